#!/usr/bin/env bash
# End-to-end tests of swimlb-controller against a real kube-apiserver (v1.20.2, built once by
# scripts/kube-apiserver.sh) and etcd, both on 127.0.0.1 only, on random free ports, with their
# data in a temporary directory removed on exit. Extra arguments go to the test binary (a test
# name filter, for instance).
set -euo pipefail
cd "$(dirname "$0")/.."

e2e_users=(swimlb-e2e-controller)
# shellcheck source=scripts/lib/apiserver.sh
source scripts/lib/apiserver.sh
# The controller runs as its own user, limited by deploy/controller/rbac.yaml.
controller_token=$e2e_token_swimlb_e2e_controller
export SWIMLB_E2E_CONTROLLER_KUBECONFIG="$work/controller-kubeconfig"
write_kubeconfig "$SWIMLB_E2E_CONTROLLER_KUBECONFIG" "$controller_token"

kubectl apply -f deploy/crds/ >/dev/null
kubectl wait --for condition=established --timeout=60s crd/ipaddresspools.swimlb.io >/dev/null
kubectl apply -f deploy/controller/namespace.yaml -f deploy/controller/rbac.yaml \
  -f deploy/speaker/rbac.yaml >/dev/null
# Each test binds swimlb-controller-config in its own configuration namespace.
kubectl create clusterrolebinding swimlb-e2e-controller --clusterrole swimlb-controller \
  --user swimlb-e2e-controller >/dev/null

tests_start=$(date +%s)
cargo test -p swimlb-controller --test e2e -- --ignored --test-threads=1 --nocapture "$@"
echo "== e2e tests took $(($(date +%s) - tests_start)) s"
