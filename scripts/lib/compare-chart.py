#!/usr/bin/env python3
"""Compares two renderings of swimlb's manifests object by object: `kubectl kustomize deploy/`
(first file) and `helm template` of deploy/helm/swimlb (second file), both multi-document YAML.

Objects are matched by (kind, namespace, name); both sides must render the same set except the
kinds listed in CHART_ONLY and the objects in KUSTOMIZE_ONLY. Matched objects must be equal in
every field (apiVersion, metadata, spec, rules, data, ...) except these intended differences,
which the chart may add and which must be absent from deploy/:

- HELM_LABELS in metadata.labels: the standard Helm labels (deploy/ has no release);
- INSTANCE_LABEL in every matchLabels, in a Service's selector and in pod template labels: the chart's selectors name the
  release (selectors are immutable, so it has to be there from the first install);
- TEMPLATE_ANNOTATIONS in pod template annotations: the configuration checksum that rolls the
  speakers when the chart changes their ConfigMap.

Any other difference is a drift and fails, with the path of each differing field.
Usage: compare-chart.py KUSTOMIZE.yaml HELM.yaml [--allow-missing KIND/NAMESPACE/NAME ...]
"""
import sys

import yaml

HELM_LABELS = {"helm.sh/chart", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by",
               "app.kubernetes.io/version"}
INSTANCE_LABEL = "app.kubernetes.io/instance"
TEMPLATE_ANNOTATIONS = {"checksum/config"}
# Rendered from values (pools, advertisements); deploy/ leaves them to deploy/examples/.
CHART_ONLY = {"IPAddressPool", "L2Advertisement"}


def load(path):
    objects = {}
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if not doc:
                continue
            meta = doc.get("metadata", {})
            key = (doc["kind"], meta.get("namespace", ""), meta["name"])
            if key in objects:
                sys.exit(f"{path}: {'/'.join(key)} rendered twice")
            objects[key] = doc
    return objects


def drop_extra(chart, kustomize, keys, what, allowed, where):
    """Removes from the chart's map the keys (of `keys`) deploy/'s map lacks."""
    if not isinstance(chart, dict):
        return
    for key in sorted(keys):
        if key in chart and key not in (kustomize or {}):
            del chart[key]
            allowed.add(f"{what} {key}")
    if not chart and kustomize is None:
        parent, name = where
        del parent[name]


def allow_intended(chart, kustomize, allowed):
    meta, kmeta = chart.get("metadata", {}), kustomize.get("metadata", {})
    if "labels" in meta:
        drop_extra(meta["labels"], kmeta.get("labels"), HELM_LABELS, "label", allowed,
                   (meta, "labels"))

    def walk(node, other):
        if isinstance(node, dict):
            for key in list(node):
                sub = other.get(key) if isinstance(other, dict) else None
                if key == "matchLabels" and isinstance(node[key], dict):
                    drop_extra(node[key], sub, {INSTANCE_LABEL}, "selector label", allowed,
                               (node, key))
                elif key in node:
                    walk(node[key], sub)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, other[i] if isinstance(other, list) and i < len(other) else None)

    walk(chart.get("spec"), kustomize.get("spec"))
    if chart.get("kind") == "Service" and isinstance(chart.get("spec", {}).get("selector"), dict):
        spec = chart["spec"]
        drop_extra(spec["selector"], kustomize.get("spec", {}).get("selector"), {INSTANCE_LABEL},
                   "selector label", allowed, (spec, "selector"))
    template = chart.get("spec", {}).get("template", {}).get("metadata")
    if template is not None:
        ktemplate = kustomize.get("spec", {}).get("template", {}).get("metadata", {})
        if "labels" in template:
            drop_extra(template["labels"], ktemplate.get("labels"), {INSTANCE_LABEL},
                       "pod label", allowed, (template, "labels"))
        if "annotations" in template:
            drop_extra(template["annotations"], ktemplate.get("annotations"),
                       TEMPLATE_ANNOTATIONS, "pod annotation", allowed, (template, "annotations"))


def differences(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            sub = f"{path}.{key}"
            if key not in a:
                yield f"{sub}: only in the chart: {b[key]!r}"
            elif key not in b:
                yield f"{sub}: only in deploy/: {a[key]!r}"
            else:
                yield from differences(a[key], b[key], sub)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            extra = a[len(b):] or b[len(a):]
            yield (f"{path}: {len(a)} items in deploy/, {len(b)} in the chart"
                   f" (beyond the shorter list: {extra!r})")
        for i, (x, y) in enumerate(zip(a, b)):
            yield from differences(x, y, f"{path}[{i}]")
    elif not same_scalar(a, b):
        yield f"{path}: deploy/ has {a!r}, the chart {b!r}"


def same_scalar(a, b):
    """Equal values of the same YAML type ("7472" is not 7472, true is not 1); 0 and 0.0 agree
    (helm writes the CRDs' integers back as floats)."""
    def kind(x):
        if isinstance(x, bool):
            return "bool"
        return "number" if isinstance(x, (int, float)) else type(x).__name__
    return kind(a) == kind(b) and a == b


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    kustomize, chart = load(args[0]), load(args[1])
    may_miss = set()
    rest = args[2:]
    while rest:
        if rest[0] != "--allow-missing" or len(rest) < 2:
            sys.exit(__doc__)
        may_miss.add(tuple(rest[1].split("/")))
        rest = rest[2:]

    failures, allowed = [], set()
    for key in sorted(set(kustomize) - set(chart)):
        if key not in may_miss:
            failures.append(f"{'/'.join(key)}: rendered by deploy/ only")
    for key in sorted(set(chart) - set(kustomize)):
        if key[0] not in CHART_ONLY:
            failures.append(f"{'/'.join(key)}: rendered by the chart only")
    both = sorted(set(kustomize) & set(chart))
    for key in both:
        ours = chart[key]
        allow_intended(ours, kustomize[key], allowed)
        for line in differences(kustomize[key], ours):
            failures.append(f"{'/'.join(key)}{line}")
    if failures:
        print(f"the chart and deploy/ disagree ({len(failures)}):", file=sys.stderr)
        for line in failures:
            print(f"  {line}", file=sys.stderr)
        sys.exit(1)
    only = sorted({k[0] for k in set(chart) - set(kustomize)})
    print(f"chart = deploy/: {len(both)} objects equal"
          f"{'; chart only: ' + ', '.join(only) if only else ''}"
          f"; intended differences: {', '.join(sorted(allowed)) or 'none'}")


if __name__ == "__main__":
    main()
