#!/usr/bin/env bash
# Checks deploy/helm/swimlb with a real helm (v4, fetched once by scripts/helm.sh):
#  1. the chart's crds/ holds exactly the files of deploy/crds/, byte for byte;
#     deploy/examples/prometheus-rules.yaml passes promtool check rules and its unit tests
#     (promtool test rules), and the chart's files/prometheus-rules.yaml is the same file;
#  2. helm lint --strict, with the default values and with tests/helm/upgrade-values.yaml; the
#     values schema rejects an unknown key and a wrong type;
#  3. helm template with the default values equals kubectl kustomize deploy/ object by object
#     (scripts/lib/compare-chart.py: same kinds, names and namespaces, same fields but for the
#     documented Helm labels, the release in selectors and the config checksum; the pools and
#     advertisements are the chart's own); with namespace.create=true the chart's Namespace
#     equals deploy/'s too;
#  4. helm install, upgrade (tests/helm/upgrade-values.yaml) and uninstall against a real
#     kube-apiserver v1.20.2 and etcd on 127.0.0.1 (scripts/lib/apiserver.sh; no kubelet, so no
#     pods: the objects are checked, and the pod templates are admitted by a server dry run);
#     then kubectl apply -k of deploy/ as 1.20 takes it (tests/cluster/kubernetes-1.20/).
set -euo pipefail
cd "$(dirname "$0")/.."

check_start=$(date +%s)
chart=deploy/helm/swimlb
ns=swimlb-system
helm=$(scripts/helm.sh)
tmp=$(mktemp -d /tmp/swimlb-helm-check.XXXXXX)
remove_tmp() { rm -rf "$tmp"; }
trap remove_tmp EXIT
# helm keeps its caches, configuration and plugins here, not in $HOME.
export HELM_CACHE_HOME=$tmp/helm/cache HELM_CONFIG_HOME=$tmp/helm/config HELM_DATA_HOME=$tmp/helm/data
step() { echo "== helm chart: $*"; }
fail() { echo "check-helm-chart: $*" >&2; exit 1; }
helm() { "$helm" "$@"; }

step "helm $(helm version --template '{{ .Version }}') ($helm)"

# 1. CRDs: every deploy/crds/ file in the chart, unchanged, and nothing else.
for crd in deploy/crds/*.yaml; do
  copy=$chart/crds/$(basename "$crd")
  [ -f "$copy" ] || fail "$copy is missing: copy $crd into the chart's crds/"
  cmp -s "$crd" "$copy" || fail "$copy differs from $crd: copy it again"
done
for copy in "$chart"/crds/*; do
  [ -f "deploy/crds/$(basename "$copy")" ] || fail "$copy has no counterpart in deploy/crds/"
done
step "crds/ = deploy/crds/ ($(find deploy/crds -name '*.yaml' | wc -l) files)"

# The CRD chart: the same files, rendered as deploy/crds/ says (each kept on uninstall).
crd_chart=deploy/helm/swimlb-crds
for crd in deploy/crds/*.yaml; do
  cmp -s "$crd" "$crd_chart/files/$(basename "$crd")" ||
    fail "$crd_chart/files/$(basename "$crd") differs from $crd (or is missing): copy it again"
done
[ "$(find "$crd_chart/files" -name '*.yaml' | wc -l)" = "$(find deploy/crds -name '*.yaml' | wc -l)" ] ||
  fail "$crd_chart/files/ holds files deploy/crds/ does not"
helm lint --strict "$crd_chart" >"$tmp/lint.log" 2>&1 || { cat "$tmp/lint.log" >&2; fail "helm lint $crd_chart failed"; }
helm template swimlb-crds "$crd_chart" >"$tmp/crd-chart.yaml"
python3 - "$tmp/crd-chart.yaml" deploy/crds/*.yaml <<'PY' || fail "$crd_chart renders other CRDs than deploy/crds/"
import sys, yaml
rendered = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
wanted = [d for f in sys.argv[2:] for d in yaml.safe_load_all(open(f)) if d]
for crd in rendered:
    annotations = crd["metadata"].pop("annotations")
    assert annotations == {"helm.sh/resource-policy": "keep"}, annotations
key = lambda d: d["metadata"]["name"]
assert sorted(rendered, key=key) == sorted(wanted, key=key), "rendered CRDs differ"
PY
step "$crd_chart renders deploy/crds/ ($(grep -c '^kind: CustomResourceDefinition' "$tmp/crd-chart.yaml") CRDs, kept on uninstall)"

# Alerting rules: valid, unit-tested, and the chart renders the same file.
command -v promtool >/dev/null || fail "promtool is missing (scripts/setup.sh installs it)"
promtool check rules deploy/examples/prometheus-rules.yaml >"$tmp/promtool.log" 2>&1 ||
  { cat "$tmp/promtool.log" >&2; fail "promtool check rules deploy/examples/prometheus-rules.yaml failed"; }
promtool test rules deploy/examples/prometheus-rules.test.yaml >"$tmp/promtool.log" 2>&1 ||
  { cat "$tmp/promtool.log" >&2; fail "promtool test rules deploy/examples/prometheus-rules.test.yaml failed"; }
cmp -s deploy/examples/prometheus-rules.yaml "$chart/files/prometheus-rules.yaml" ||
  fail "$chart/files/prometheus-rules.yaml differs from deploy/examples/prometheus-rules.yaml: copy it again"
step "prometheus-rules.yaml: promtool check rules and test rules pass; the chart's copy is identical"

# 2. Lint and schema.
helm lint --strict "$chart" >"$tmp/lint.log" 2>&1 || { cat "$tmp/lint.log" >&2; fail "helm lint --strict failed"; }
helm lint --strict "$chart" -f tests/helm/upgrade-values.yaml >"$tmp/lint.log" 2>&1 ||
  { cat "$tmp/lint.log" >&2; fail "helm lint --strict with tests/helm/upgrade-values.yaml failed"; }
for bad in 'unknownKey=1' 'gossipPort=seven' 'preset=slow' 'pools[0].addresses=null'; do
  if helm template swimlb "$chart" -n "$ns" --set "$bad" >/dev/null 2>"$tmp/schema.log"; then
    fail "the values schema accepts --set $bad"
  fi
  grep -q 'schema' "$tmp/schema.log" || { cat "$tmp/schema.log" >&2; fail "--set $bad failed, but not by the schema"; }
done
step "lint --strict ok; the schema rejects an unknown key and wrong types"
# The ServiceMonitors and the PrometheusRule: no CRD for them in the API server below, so they
# are rendered and checked here only.
monitoring=(--set serviceMonitor.enabled=true --set serviceMonitor.interval=15s
  --set serviceMonitor.labels.release=prometheus --set prometheusRule.enabled=true
  --set prometheusRule.labels.release=prometheus)
helm lint --strict "$chart" "${monitoring[@]}" >"$tmp/lint.log" 2>&1 ||
  { cat "$tmp/lint.log" >&2; fail "helm lint --strict with the ServiceMonitors and the PrometheusRule failed"; }
helm template swimlb "$chart" -n "$ns" "${monitoring[@]}" >"$tmp/monitoring.yaml"
python3 scripts/lib/check-monitoring.py "$tmp/monitoring.yaml" deploy/examples/prometheus-rules.yaml "$ns"
for bad in 'serviceMonitor.interval=often' 'prometheusRule.enabled=yes'; do
  if helm template swimlb "$chart" -n "$ns" --set "$bad" >/dev/null 2>&1; then
    fail "the values schema accepts --set $bad"
  fi
done
if helm template swimlb "$chart" -n "$ns" | grep -q 'monitoring.coreos.com'; then
  fail "the defaults render a ServiceMonitor or PrometheusRule"
fi
step "serviceMonitor.enabled / prometheusRule.enabled render valid objects; off by default"

# 3. The chart with its defaults against kubectl kustomize deploy/.
kubectl kustomize deploy/ >"$tmp/kustomize.yaml"
helm template swimlb "$chart" -n "$ns" --include-crds >"$tmp/chart.yaml"
python3 scripts/lib/compare-chart.py "$tmp/kustomize.yaml" "$tmp/chart.yaml" \
  --allow-missing "Namespace//$ns"
helm template swimlb "$chart" -n "$ns" --include-crds --set namespace.create=true >"$tmp/chart-ns.yaml"
python3 scripts/lib/compare-chart.py "$tmp/kustomize.yaml" "$tmp/chart-ns.yaml" >/dev/null
step "with namespace.create=true the Namespace agrees too"
helm install swimlb "$chart" -n "$ns" --dry-run=client >"$tmp/dry-run.txt"
grep -q 'WARNING: these pool addresses are documentation examples' "$tmp/dry-run.txt" ||
  fail "NOTES.txt does not warn about the example pool addresses"
helm install swimlb "$chart" -n "$ns" --dry-run=client -f tests/helm/upgrade-values.yaml >"$tmp/dry-run.txt"
if grep -q 'WARNING: these pool addresses' "$tmp/dry-run.txt"; then
  fail "NOTES.txt warns about pool addresses that are not examples"
fi
step "NOTES.txt warns about the example pool addresses (and only about those)"

# 4. Install, upgrade and uninstall in a real API server.
extra_cleanup=remove_tmp
# shellcheck source=scripts/lib/apiserver.sh
source scripts/lib/apiserver.sh
install_start=$(date +%s)

# The objects of a manifest that exist (kind/name), one a line.
existing() { kubectl get -f "$1" --ignore-not-found -o name | sort; }
count() { grep -c '^kind:' "$1"; }
jsonpath() { kubectl -n "$ns" get "$1" -o "jsonpath=$2"; }

# The CRDs as a release of their own, so that helm upgrade upgrades them: installed from a copy
# that lacks one CRD (an older swimlb), then upgraded to this chart, which brings it; the main
# chart installed after it leaves the existing CRDs to it.
old_crds=$tmp/swimlb-crds-old
cp -r "$crd_chart" "$old_crds"
rm "$old_crds/files/servicel2statuses.yaml"
helm install swimlb-crds "$old_crds" -n "$ns" --create-namespace >/dev/null
kubectl get crd servicel2statuses.swimlb.io >/dev/null 2>&1 && fail "the older CRD chart installed a CRD it lacks"
helm upgrade swimlb-crds "$crd_chart" -n "$ns" >/dev/null
kubectl wait --for condition=established --timeout=60s crd/servicel2statuses.swimlb.io >/dev/null ||
  fail "helm upgrade of $crd_chart did not bring the new CRD"
[ "$(kubectl get crd ipaddresspools.swimlb.io -o 'jsonpath={.metadata.annotations.meta\.helm\.sh/release-name}')" = swimlb-crds ] ||
  fail "the CRDs are not managed by the swimlb-crds release"
step "$crd_chart: helm upgrade brings a new CRD; the CRDs belong to that release"

helm install swimlb "$chart" -n "$ns" --create-namespace >"$tmp/install.txt"
helm get manifest swimlb -n "$ns" >"$tmp/installed.yaml"
want=$(count "$tmp/installed.yaml")
got=$(existing "$tmp/installed.yaml" | wc -l)
[ "$got" = "$want" ] || { existing "$tmp/installed.yaml" >&2; fail "install: $got of $want objects exist"; }
kubectl get crd ipaddresspools.swimlb.io >/dev/null || fail "install: the IPAddressPool CRD is missing"
[ "$(jsonpath ipaddresspool/default '{.spec.addresses[0]}')" = 192.0.2.30-192.0.2.49 ] ||
  fail "install: pool default has the wrong addresses"
[ "$(jsonpath l2advertisement/default '{.spec.ipAddressPools[0]}')" = default ] ||
  fail "install: advertisement default does not select pool default"
[ "$(jsonpath deployment/swimlb-controller '{.spec.replicas}')" = 2 ] || fail "install: controller replicas"
[ "$(jsonpath pdb/swimlb-controller '{.spec.minAvailable}')" = 1 ] || fail "install: PodDisruptionBudget"
for component in speaker controller; do
  [ "$(jsonpath "service/swimlb-$component-metrics" '{.spec.clusterIP} {.spec.ports[0].name} {.spec.ports[0].port} {.spec.selector.app\.kubernetes\.io/component}')" = "None metrics 7472 $component" ] ||
    fail "install: the headless metrics Service of the $component"
done
grep -q "kubectl get ipaddresspools,l2advertisements -n $ns" "$tmp/install.txt" ||
  fail "install: NOTES.txt does not say how to check the pools"
step "install: $got objects exist (PodDisruptionBudget as $(grep -B1 '^kind: PodDisruptionBudget' "$tmp/installed.yaml" | head -n1 | cut -d' ' -f2))"

# The pod templates as bare Pods, admitted by a server-side dry run (priority classes, seccomp,
# host network, capabilities) since no controller manager turns them into pods here. Without
# a controller manager no service account has a token Secret either, so the Pods mount none.
admit_pods() {
  for workload in daemonset/swimlb-speaker deployment/swimlb-controller; do
    kubectl -n "$ns" get "$workload" -o json | python3 -c '
import json, sys
workload = json.load(sys.stdin)
template = workload["spec"]["template"]
template["spec"]["automountServiceAccountToken"] = False
print(json.dumps({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": workload["metadata"]["name"] + "-admission",
                               "labels": template["metadata"].get("labels", {})},
                  "spec": template["spec"]}))' >"$tmp/pod.json"
    kubectl -n "$ns" create --dry-run=server -f "$tmp/pod.json" -o name >/dev/null ||
      fail "$1: the API server refuses the pod of $workload"
  done
}
admit_pods install

revision_before=$(jsonpath daemonset/swimlb-speaker '{.spec.template.metadata.annotations.checksum/config}')
helm upgrade swimlb "$chart" -n "$ns" -f tests/helm/upgrade-values.yaml >/dev/null
helm get manifest swimlb -n "$ns" >"$tmp/upgraded.yaml"
want=$(count "$tmp/upgraded.yaml")
got=$(existing "$tmp/upgraded.yaml" | wc -l)
[ "$got" = "$want" ] || { existing "$tmp/upgraded.yaml" >&2; fail "upgrade: $got of $want objects exist"; }
[ "$(helm status swimlb -n "$ns" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')" = 2 ] ||
  fail "upgrade: the release is not at revision 2"
[ "$(jsonpath deployment/swimlb-controller '{.spec.replicas}')" = 1 ] || fail "upgrade: controller replicas"
[ "$(jsonpath pdb/swimlb-controller '{.spec.maxUnavailable}')" = 1 ] ||
  fail "upgrade: one controller replica should make the PodDisruptionBudget maxUnavailable: 1"
[ "$(jsonpath ipaddresspool/default '{.spec.addresses[1]} {.spec.autoAssign} {.spec.avoidBuggyIPs}')" = "fd00::/120 false true" ] ||
  fail "upgrade: pool default"
[ "$(jsonpath ipaddresspool/team-a '{.spec.serviceAllocation.priority} {.spec.serviceAllocation.namespaces[0]}')" = "10 team-a" ] ||
  fail "upgrade: pool team-a"
[ "$(jsonpath l2advertisement/team-a '{.spec.nodeSelectors[0].matchLabels.kubernetes\.io/hostname} {.spec.interfaces[0]}')" = "node-1 eth1" ] ||
  fail "upgrade: advertisement team-a"
kubectl -n "$ns" get l2advertisement/everything >/dev/null || fail "upgrade: advertisement everything"
jsonpath configmap/swimlb-speaker '{.data.speaker\.yaml}' | grep -qx '  preset: memberlist' ||
  fail "upgrade: the speaker configuration keeps its old preset"
[ "$(jsonpath daemonset/swimlb-speaker '{.spec.template.spec.containers[0].image}')" = registry.example/swimlb/speaker:0.1.1 ] ||
  fail "upgrade: speaker image"
[ "$(jsonpath daemonset/swimlb-speaker '{.spec.template.metadata.annotations.checksum/config}')" != "$revision_before" ] ||
  fail "upgrade: a changed speaker configuration left the pod template's checksum unchanged"
admit_pods upgrade
step "upgrade: revision 2, $got objects, changed values applied (pools, advertisements, replicas, configuration)"

helm uninstall swimlb -n "$ns" >/dev/null
left=$(existing "$tmp/upgraded.yaml")
[ -z "$left" ] || fail "uninstall left: $left"
kubectl get crd ipaddresspools.swimlb.io >/dev/null || fail "uninstall removed the CRD"
helm uninstall swimlb-crds -n "$ns" >/dev/null
for crd in ipaddresspools l2advertisements servicel2statuses; do
  kubectl get crd "$crd.swimlb.io" >/dev/null || fail "uninstalling swimlb-crds removed $crd (resource-policy keep)"
done
step "uninstall: no object left; the CRDs stay (both releases)"

# The chart renders the release namespace with its Pod Security labels when asked (helm's
# --create-namespace creates it first, the chart's Namespace then takes it over); uninstalling
# deletes it.
helm install swimlb "$chart" -n swimlb-labelled --create-namespace --set namespace.create=true >/dev/null
[ "$(kubectl get namespace swimlb-labelled -o 'jsonpath={.metadata.labels.pod-security\.kubernetes\.io/enforce}')" = privileged ] ||
  fail "namespace.create=true: the namespace lacks its Pod Security label"
helm uninstall swimlb -n swimlb-labelled >/dev/null
# No controller manager runs to finish the deletion: the namespace stays Terminating.
phase=$(kubectl get namespace swimlb-labelled --ignore-not-found -o 'jsonpath={.status.phase}')
[ -z "$phase" ] || [ "$phase" = Terminating ] || fail "namespace.create=true: uninstall left the namespace ($phase)"
step "namespace.create=true: the release namespace labelled for Pod Security, deleted on uninstall"

# deploy/ as the cluster test applies it, on the same API server.
# (Objects the helm install left, the namespace and the CRD, are taken over.)
kubectl apply -k tests/cluster/kubernetes-1.20/ >"$tmp/apply.log" 2>&1 ||
  { cat "$tmp/apply.log" >&2; fail "kubectl apply -k tests/cluster/kubernetes-1.20/ failed"; }
kubectl kustomize tests/cluster/kubernetes-1.20/ >"$tmp/kustomize-1.20.yaml"
want=$(count "$tmp/kustomize-1.20.yaml")
got=$(existing "$tmp/kustomize-1.20.yaml" | wc -l)
[ "$got" = "$want" ] || fail "apply -k tests/cluster/kubernetes-1.20/: $got of $want objects exist"
admit_pods "apply -k"
# Without a controller manager the namespace stays Terminating: wait for the rest only.
kubectl delete -k tests/cluster/kubernetes-1.20/ --wait=false >/dev/null
left=$(existing "$tmp/kustomize-1.20.yaml" | grep -vx "namespace/$ns" || true)
[ -z "$left" ] || fail "delete -k tests/cluster/kubernetes-1.20/ left: $left"
step "kubectl apply -k tests/cluster/kubernetes-1.20/: $got objects on 1.20, pods admitted; deleted"

echo "== helm chart checks passed in $(($(date +%s) - check_start)) s (API server part $(($(date +%s) - install_start)) s)"
