#!/usr/bin/env python3
"""Checks the chart's monitoring objects in a `helm template` rendering (multi-document YAML)
made with serviceMonitor.enabled=true, prometheusRule.enabled=true, serviceMonitor.interval=15s
and the extra labels release=prometheus on both: one ServiceMonitor per component selecting its
headless metrics Service by labels and port name, and a PrometheusRule whose spec is the rules
file (second argument) exactly.
Usage: check-monitoring.py RENDERED.yaml RULES.yaml NAMESPACE
"""
import sys

import yaml


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    rendered, rules_file, ns = sys.argv[1:]
    with open(rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    with open(rules_file) as f:
        rules = yaml.safe_load(f)
    failures = []
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    for component in ("speaker", "controller"):
        mine = [m for m in monitors
                if m["metadata"]["labels"].get("app.kubernetes.io/component") == component]
        if len(mine) != 1:
            failures.append(f"{len(mine)} ServiceMonitors for the {component}, want 1")
            continue
        m = mine[0]
        where = f"ServiceMonitor {m['metadata']['name']}"
        if m["apiVersion"] != "monitoring.coreos.com/v1":
            failures.append(f"{where}: apiVersion {m['apiVersion']}")
        if m["metadata"].get("namespace") != ns:
            failures.append(f"{where}: namespace {m['metadata'].get('namespace')}")
        if m["metadata"]["labels"].get("release") != "prometheus":
            failures.append(f"{where}: the extra label release=prometheus is missing")
        spec = m["spec"]
        if spec.get("namespaceSelector") != {"matchNames": [ns]}:
            failures.append(f"{where}: namespaceSelector {spec.get('namespaceSelector')}")
        endpoints = spec.get("endpoints", [])
        if len(endpoints) != 1 or endpoints[0].get("port") != "metrics" \
                or endpoints[0].get("interval") != "15s" or endpoints[0].get("path") != "/metrics":
            failures.append(f"{where}: endpoints {endpoints}")
        selector = spec["selector"]["matchLabels"]
        matched = [s for s in services.values()
                   if all(s["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())]
        if len(matched) != 1:
            failures.append(f"{where}: selects {len(matched)} Services, want 1")
            continue
        service = matched[0]
        if service["spec"].get("clusterIP") != "None":
            failures.append(f"Service {service['metadata']['name']}: not headless")
        if "metrics" not in [p.get("name") for p in service["spec"]["ports"]]:
            failures.append(f"Service {service['metadata']['name']}: no port named metrics")
        if service["spec"]["selector"].get("app.kubernetes.io/component") != component:
            failures.append(f"Service {service['metadata']['name']}: selects no {component} pods")
    prometheus_rules = [d for d in docs if d["kind"] == "PrometheusRule"]
    if len(prometheus_rules) != 1:
        failures.append(f"{len(prometheus_rules)} PrometheusRules, want 1")
    else:
        r = prometheus_rules[0]
        if r["apiVersion"] != "monitoring.coreos.com/v1":
            failures.append(f"PrometheusRule: apiVersion {r['apiVersion']}")
        if r["metadata"]["labels"].get("release") != "prometheus":
            failures.append("PrometheusRule: the extra label release=prometheus is missing")
        if r["spec"] != rules:
            failures.append(f"PrometheusRule: spec differs from {rules_file}")
    if failures:
        sys.exit("check-monitoring: " + "\n  ".join(failures))
    print(f"monitoring: {len(monitors)} ServiceMonitors on headless metrics Services, "
          f"PrometheusRule = {rules_file} ({sum(len(g['rules']) for g in rules['groups'])} rules)")


main()
