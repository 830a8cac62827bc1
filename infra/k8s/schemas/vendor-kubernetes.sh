#!/usr/bin/env bash
# Regenerates the vendored Kubernetes JSON schemas in infra/k8s/schemas/kubernetes/:
#
#   infra/k8s/schemas/vendor-kubernetes.sh       (then commit what changed)
#
# Source: the PyPI package kubernetes-validate (KUBERNETES_VALIDATE_PIN below), which ships JSON
# schemas generated from the Kubernetes OpenAPI document of each Kubernetes release, one file
# per type with references to a shared _definitions.json. kubeconform needs one self-contained
# ("standalone") file per kind, named as in its default layout
#   v<K8S_VERSION>-standalone-strict/<kind>[-<group>]-<version>.json
# so this script inlines every reference and drops the `description` texts (they are what makes
# such files megabytes; validation never reads them). Strictness is the package's: objects allow
# no properties besides the declared ones (`additionalProperties: false`).
#
# Only the kinds Brain's manifests use are written (KINDS); a manifest that starts using another
# kind fails check-k8s.sh with "could not find schema" until it is added here.
set -euo pipefail

KUBERNETES_VALIDATE_PIN="kubernetes-validate==1.37.0"
K8S_VERSION="${K8S_VERSION:-1.33.0}"
KINDS=(
  configmap-v1
  deployment-apps-v1
  horizontalpodautoscaler-autoscaling-v2
  ingress-networking-v1
  namespace-v1
  networkpolicy-networking-v1
  poddisruptionbudget-policy-v1
  service-v1
  serviceaccount-v1
)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/kubernetes/v$K8S_VERSION-standalone-strict"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m pip download --quiet --disable-pip-version-check --no-deps "$KUBERNETES_VALIDATE_PIN" -d "$work"
wheel="$(ls "$work"/*.whl)"
rm -rf "$out"
mkdir -p "$out"
python3 - "$wheel" "v$K8S_VERSION-local-strict" "$out" "${KINDS[@]}" <<'PY'
import json, sys, zipfile
from pathlib import Path

wheel, folder, out, kinds = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4:]
prefix = f"kubernetes_validate/kubernetes-json-schema/{folder}/"
archive = zipfile.ZipFile(wheel)
defs = json.loads(archive.read(prefix + "_definitions.json"))["$defs"]

def resolve(node, seen):
    """`node` with every $ref inlined and every description dropped (schema keywords only)."""
    if isinstance(node, list):
        return [resolve(n, seen) for n in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is not None:
        name = ref.split("#/$defs/", 1)[1]
        if name in seen:
            raise SystemExit(f"recursive definition {name}: cannot be inlined")
        node = {**resolve(defs[name], seen | {name}), **resolve(node, seen)}
    result = {}
    for key, value in node.items():
        if key in ("description", "$id", "$schema"):
            continue
        if key in ("properties", "patternProperties", "$defs"):
            result[key] = {k: resolve(v, seen) for k, v in value.items()}
        else:
            result[key] = resolve(value, seen)
    return result

for kind in kinds:
    schema = resolve(json.loads(archive.read(prefix + kind + ".json")), frozenset())
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    (out / f"{kind}.json").write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    print(f"{out.name}/{kind}.json")
PY
