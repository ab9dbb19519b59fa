#!/usr/bin/env bash
# Builds the swimlb container images offline, without pulling anything: the release binaries cargo
# builds, plus the shared libraries they load (found with ldd, copied from this machine's Debian),
# assembled into OCI images with Debian's umoci and written as OCI layout tarballs that
# `ctr images import --base-name NAME` (or `podman load`) reads.
#
#   scripts/image.sh [OUT_DIR]    # default target/images; prints the tarballs' paths
#
# Images (the names deploy/ and the Helm chart use; REPOSITORY and TAG override them):
#   $REPOSITORY/speaker:$TAG     entrypoint swimlb-speaker, runs as root (the DaemonSet adds NET_RAW)
#   $REPOSITORY/controller:$TAG  entrypoint swimlb-controller, user 65534:65534
# REPOSITORY defaults to swimlb, TAG to the workspace version.
#
# With SWIMLB_IMAGE_BINARIES=DIR the binaries are taken from DIR instead of being built.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in umoci ldd tar; do
  command -v "$tool" >/dev/null || { echo "$(basename "$0"): $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
repository=${REPOSITORY:-swimlb}
tag=${TAG:-$version}
out=$(realpath -m "${1:-target/images}")
mkdir -p "$out"

bin_dir=${SWIMLB_IMAGE_BINARIES:-}
if [ -z "$bin_dir" ]; then
  cargo build --release --locked -q -p swimlb-speaker -p swimlb-controller
  bin_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release
fi

# shellcheck source=scripts/lib/oci.sh
source scripts/lib/oci.sh
work=$(mktemp -d /var/tmp/swimlb-image.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Dynamic linking against glibc, with the libraries shipped, keeps the image's binary the very
# one the tests ran (a static build would be a second build); the libraries add about 2.5 MB.
oci_rootfs "$work/speaker" "$bin_dir/swimlb-speaker"
oci_image "$out/speaker.tar" "$tag" "$work/speaker" 0:0 /usr/local/bin/swimlb-speaker
oci_rootfs "$work/controller" "$bin_dir/swimlb-controller"
oci_image "$out/controller.tar" "$tag" "$work/controller" 65534:65534 /usr/local/bin/swimlb-controller
echo "$out/speaker.tar"
echo "$out/controller.tar"
echo "== images $repository/speaker:$tag and $repository/controller:$tag in $out" >&2
echo "   import: ctr -n k8s.io images import --base-name docker.io/$repository/speaker $out/speaker.tar" >&2
