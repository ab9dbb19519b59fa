#!/usr/bin/env python3
"""Renders deploy/helm/swimlb with its default values and checks every document is valid YAML
with the expected kinds. Uses `helm template` when helm is installed; otherwise a minimal
renderer for the few template forms the chart uses (value paths, toJson, range/end), which
fails on any other form so the chart stays within what this check understands."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parent.parent / "deploy" / "helm" / "swimlb"
NAMESPACE = "swimlb-system"
EXPECTED = {
    "ServiceAccount": 2, "ClusterRole": 3, "ClusterRoleBinding": 2, "RoleBinding": 1,
    "Deployment": 1, "DaemonSet": 1, "ConfigMap": 1, "IPAddressPool": 1,
}
ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")


def lookup(path, scope, values):
    if path.startswith("$."):
        path, scope = path[1:], None
    if path == ".Release.Namespace":
        return NAMESPACE
    if path.startswith(".Values."):
        node, keys = values, path[len(".Values."):].split(".")
    elif scope is not None and path.startswith("."):
        node, keys = scope, path[1:].split(".")
    else:
        raise ValueError(f"unsupported reference {path}")
    for key in keys:
        node = node[key]
    return node


def expression(text, scope, values):
    words = text.split()
    if len(words) == 2 and words[0] == "toJson":
        return json.dumps(lookup(words[1], scope, values))
    if len(words) == 1:
        value = lookup(words[0], scope, values)
        return value if isinstance(value, str) else json.dumps(value)
    raise ValueError(f"unsupported template action {{{{ {text} }}}}")


def render(text, values, scope=None):
    out, pos = [], 0
    while True:
        match = ACTION.search(text, pos)
        if not match:
            out.append(text[pos:])
            return "".join(out)
        before = text[pos:match.start()]
        if match.group(0).startswith("{{-"):
            before = before.rstrip()
        out.append(before)
        action = match.group(1)
        if action.startswith("range "):
            end = text.index("{{- end }}", match.end())
            body = text[match.end():end]
            for item in lookup(action.split()[1], scope, values):
                out.append(render(body, values, item))
            pos = end + len("{{- end }}")
        else:
            out.append(expression(action, scope, values))
            pos = match.end()


def main():
    if shutil.which("helm"):
        rendered = subprocess.run(["helm", "template", "swimlb", str(CHART), "-n", NAMESPACE],
                                  check=True, capture_output=True, text=True).stdout
    else:
        values = yaml.safe_load((CHART / "values.yaml").read_text())
        rendered = "\n---\n".join(render(p.read_text(), values)
                                  for p in sorted((CHART / "templates").glob("*.yaml")))
    kinds = {}
    for document in yaml.safe_load_all(rendered):
        if document:
            kinds[document["kind"]] = kinds.get(document["kind"], 0) + 1
            if document["kind"] == "ConfigMap":
                yaml.safe_load(document["data"]["speaker.yaml"])
    for crd in (CHART / "crds").glob("*.yaml"):
        yaml.safe_load(crd.read_text())
    if kinds != EXPECTED:
        sys.exit(f"chart renders {kinds}, expected {EXPECTED}")
    print(f"helm chart ok: {sum(kinds.values())} objects")


if __name__ == "__main__":
    main()
