#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need, then runs
# formatting, lints, unit/property/simulation tests, a short run of every fuzz target, the
# network-namespace lab, the end-to-end tests against a real kube-apiserver, and the install on
# a real 3-node cluster in network namespaces. Must run as root (namespaces, raw sockets).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

# Cargo's build output lives outside a fresh clone, keyed by the compiler's version, so a machine
# that ran the tests before rebuilds only swimlb's own crates, not every dependency.
if [ -z "${CARGO_TARGET_DIR:-}" ] && [ ! -e target ]; then
  cargo_cache=/var/cache/swimlb/cargo-target-$(rustc -V | cut -d' ' -f2)
  mkdir -p "$cargo_cache"
  ln -s "$cargo_cache" target
fi

echo "== cargo fmt"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
# The fuzz crate is a workspace of its own (it builds with flags of its own); its unit tests are
# the regression tests of what the fuzzers found, and check the seeds still reach deep.
echo "== fuzz regression tests"; cargo test --manifest-path fuzz/Cargo.toml --target-dir target
echo "== fuzz (every target for 8 s)"; scripts/fuzz.sh
echo "== speaker lab (network namespaces)"; tests/lab/lab.sh
echo "== gossip key rotation lab (network namespaces, ~40 s)"; tests/lab/key-rotation.sh
scripts/e2e-controller.sh
echo "== deploy manifests"; kubectl kustomize deploy/ >/dev/null; scripts/check-helm-chart.sh
scripts/e2e-speaker.sh
echo "== cluster (3-node Kubernetes in network namespaces, with a 60 s soak)"
CLUSTER_SOAK_SECONDS=60 tests/cluster/cluster.sh
