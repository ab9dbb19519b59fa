#!/usr/bin/env bash
# End-to-end test of the speaker's Kubernetes mode against a real kube-apiserver (see
# scripts/lib/apiserver.sh): three swimlb-speaker processes on loopback addresses, the real
# swimlb-controller, each running as its own RBAC-limited user (deploy/*/rbac.yaml).
# Extra arguments go to the test binary.
set -euo pipefail
cd "$(dirname "$0")/.."

e2e_users=(swimlb-e2e-controller swimlb-e2e-speaker)
# shellcheck source=scripts/lib/apiserver.sh
source scripts/lib/apiserver.sh
export SWIMLB_E2E_CONTROLLER_KUBECONFIG="$work/controller-kubeconfig"
write_kubeconfig "$SWIMLB_E2E_CONTROLLER_KUBECONFIG" "$e2e_token_swimlb_e2e_controller"
export SWIMLB_E2E_SPEAKER_KUBECONFIG="$work/speaker-kubeconfig"
write_kubeconfig "$SWIMLB_E2E_SPEAKER_KUBECONFIG" "$e2e_token_swimlb_e2e_speaker"

kubectl apply -f deploy/crds/ >/dev/null
kubectl wait --for condition=established --timeout=60s crd/ipaddresspools.swimlb.io \
  crd/l2advertisements.swimlb.io crd/servicel2statuses.swimlb.io >/dev/null
kubectl apply -f deploy/controller/namespace.yaml -f deploy/controller/rbac.yaml \
  -f deploy/speaker/rbac.yaml >/dev/null
kubectl create clusterrolebinding swimlb-e2e-controller --clusterrole swimlb-controller \
  --user swimlb-e2e-controller >/dev/null
kubectl create clusterrolebinding swimlb-e2e-speaker --clusterrole swimlb-speaker \
  --user swimlb-e2e-speaker >/dev/null

cargo build -q -p swimlb-controller -p swimlb-ctl
bin_dir="$(realpath -m "${CARGO_TARGET_DIR:-target}")/debug"
export SWIMLB_E2E_CONTROLLER_BIN="$bin_dir/swimlb-controller" SWIMLB_E2E_CTL_BIN="$bin_dir/swimlbctl"
# The test pauses the API server (SIGSTOP) to check failover without it.
export SWIMLB_E2E_APISERVER_PID=$apiserver_pid
tests_start=$(date +%s)
cargo test -p swimlb-speaker --test e2e_kubernetes -- --ignored --test-threads=1 --nocapture "$@"
echo "== speaker e2e took $(($(date +%s) - tests_start)) s"
