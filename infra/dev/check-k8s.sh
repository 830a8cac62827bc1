#!/usr/bin/env bash
# Validates the Kubernetes manifests (infra/k8s/) without a cluster:
#
#   infra/dev/check-k8s.sh            install the tools if missing, then check every overlay
#   infra/dev/check-k8s.sh install    only install kustomize and kubeconform (prints their paths)
#
# For each overlay (infra/k8s/overlays/*):
#   1. kustomize build: the overlay renders.
#   2. kubeconform -strict: every rendered object against its JSON schema, offline. The schemas
#      are kept in infra/k8s/schemas/ (Kubernetes KUBERNETES_VERSION and KEDA's ScaledObject and
#      TriggerAuthentication; see its README.md); an object without a schema fails the check.
#   3. policy (infra/k8s/policy.py): readiness and liveness probes, requests and limits,
#      runAsNonRoot, secrets only by Secret reference (no literal values, no Secret objects), one
#      disruption budget per Deployment, single-instance services at one replica and never
#      autoscaled, lag triggers on the consumer groups and topics the services use with at most
#      the topics' partitions, the gateway's CPU autoscaler, only /api and /ops exposed.
#
# kustomize and kubeconform come from the Go module proxy: `go install` of the pinned versions
# into .cache/go-bin/<tool>-<version>/, built once; a second run finds them there (as
# check-alerts.sh does for promtool). PyYAML for the policy checks lives in .cache/k8s-venv
# (rebuilt only when its pin changes). Exits non-zero on any failure.
set -euo pipefail
# shellcheck source=infra/dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# v5.8.3 needs Go 1.27; v5.8.2 builds with Go 1.26 (the Go on this machine).
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.2}"
KUSTOMIZE_PACKAGE=sigs.k8s.io/kustomize/kustomize/v5
KUBECONFORM_VERSION="${KUBECONFORM_VERSION:-v0.8.0}"
KUBECONFORM_PACKAGE=github.com/yannh/kubeconform/cmd/kubeconform
KUSTOMIZE="$CACHE_DIR/go-bin/kustomize-$KUSTOMIZE_VERSION/kustomize"
KUBECONFORM="$CACHE_DIR/go-bin/kubeconform-$KUBECONFORM_VERSION/kubeconform"
K8S_DIR="$REPO_ROOT/infra/k8s"
SCHEMAS="$K8S_DIR/schemas"
# The Kubernetes version whose schemas are vendored (infra/k8s/schemas/kubernetes/).
KUBERNETES_VERSION="${KUBERNETES_VERSION:-1.33.0}"

# go install PACKAGE@VERSION into the folder of BINARY, unless BINARY is there already.
ensure_go_tool() {
  local binary=$1 package=$2 version=$3 dir started=$SECONDS
  [[ -x "$binary" ]] && return 0
  command -v go >/dev/null 2>&1 || die "go is required to build $(basename "$binary") and was not found on PATH"
  dir="$(dirname "$binary")"
  log "$(basename "$binary"): go install $package@$version (once; cached in ${dir#"$REPO_ROOT"/})"
  mkdir -p "$dir"
  # GOTOOLCHAIN=local: build with the Go on PATH, never fetch another toolchain. CGO_ENABLED=0:
  # a static binary, no C toolchain involved.
  GOBIN="$dir" GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
    go install "$package@$version" || die "$(basename "$binary"): go install $package@$version failed"
  log "$(basename "$binary"): built in $((SECONDS - started)) s"
}

ensure_go_tool "$KUSTOMIZE" "$KUSTOMIZE_PACKAGE" "$KUSTOMIZE_VERSION"
ensure_go_tool "$KUBECONFORM" "$KUBECONFORM_PACKAGE" "$KUBECONFORM_VERSION"
if [[ "${1:-}" == "install" ]]; then
  printf '%s\n' "$KUSTOMIZE" "$KUBECONFORM"
  exit 0
fi

# --- PyYAML for the policy checks ------------------------------------------------------------------
PY_PIN=PyYAML==6.0.2
K8S_VENV="$CACHE_DIR/k8s-venv"
venv_key="$(fingerprint "$PY_PIN" "$(python3 -c 'import sys; print(sys.version)')")"
if [[ ! -x "$K8S_VENV/bin/python" || "$(cat "$CACHE_DIR/stamps/k8s-venv" 2>/dev/null)" != "$venv_key" ]]; then
  log "tools: creating ${K8S_VENV#"$REPO_ROOT"/} ($PY_PIN)"
  rm -rf "$K8S_VENV" "$CACHE_DIR/stamps/k8s-venv"
  mkdir -p "$CACHE_DIR/stamps"
  python3 -m venv "$K8S_VENV"
  "$K8S_VENV/bin/pip" install --quiet --disable-pip-version-check "$PY_PIN"
  printf '%s\n' "$venv_key" >"$CACHE_DIR/stamps/k8s-venv"
fi

started="$(date +%s%N)"
passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }
indent() { sed 's/^/      | /'; }
rel() { printf '%s' "${1#"$REPO_ROOT"/}"; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "checking $(rel "$K8S_DIR") (kustomize $KUSTOMIZE_VERSION, kubeconform $KUBECONFORM_VERSION," \
  "Kubernetes $KUBERNETES_VERSION schemas)"

for overlay in "$K8S_DIR"/overlays/*/; do
  overlay="${overlay%/}"
  name="$(basename "$overlay")"
  rendered="$work/$name.yaml"
  echo "-- overlay $name"

  # --- 1. kustomize build -------------------------------------------------------------------------
  if out="$("$KUSTOMIZE" build "$overlay" 2>&1 >"$rendered")"; then
    ok "kustomize build $(rel "$overlay"): $(grep -c '^kind:' "$rendered") objects"
  else
    fail "kustomize build $(rel "$overlay"):"
    printf '%s\n' "$out" | indent
    continue
  fi

  # --- 2. kubeconform -strict ------------------------------------------------------------------------
  # Kubernetes kinds: schemas/kubernetes/v<version>-standalone-strict/<kind>[-<group>]-<version>.json;
  # CRDs: schemas/<group>/<kind>_<version>.json. No other location, so nothing is downloaded.
  if out="$("$KUBECONFORM" -strict -summary -output text -kubernetes-version "$KUBERNETES_VERSION" \
    -schema-location "$SCHEMAS/kubernetes/{{.NormalizedKubernetesVersion}}-standalone{{.StrictSuffix}}/{{.ResourceKind}}{{.KindSuffix}}.json" \
    -schema-location "$SCHEMAS/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json" \
    "$rendered" 2>&1)"; then
    ok "kubeconform -strict: $(grep -oE 'Valid: [0-9]+, Invalid: [0-9]+, Errors: [0-9]+, Skipped: [0-9]+' <<<"$out")"
  else
    fail "kubeconform -strict:"
    printf '%s\n' "$out" | sed "s|$work/||" | indent
  fi

  # --- 3. policy ------------------------------------------------------------------------------------
  policy_rc=0
  policy_out="$("$K8S_VENV/bin/python" "$K8S_DIR/policy.py" "$rendered" 2>&1)" || policy_rc=$?
  policy_failed=0
  while IFS= read -r line; do
    case "$line" in
      "ok    "*) passed=$((passed + 1)) ;;
      "FAIL  "*) failed=$((failed + 1)) policy_failed=$((policy_failed + 1)) ;;
    esac
    [[ -n "$line" ]] && printf '%s\n' "$line"
  done <<<"$policy_out"
  ((policy_rc == 0 || policy_failed > 0)) || fail "policy checks crashed (exit $policy_rc; output above)"
done

elapsed_ms=$((($(date +%s%N) - started) / 1000000))
echo "not checked: applying to a cluster (no API server here), KEDA and the HPA acting on real lag and load"
printf 'kubernetes check: %d passed, %d failed (%d.%01d s)\n' "$passed" "$failed" \
  $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100))
((failed == 0))
