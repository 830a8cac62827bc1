#!/usr/bin/env bash
# Checks Brain's Prometheus rules (infra/prometheus/alerts.yml) with promtool:
#
#   infra/dev/check-alerts.sh            install promtool if missing, then check
#   infra/dev/check-alerts.sh install    only install promtool (prints its path)
#
#   1. promtool check rules: the rule file parses, every expression is valid PromQL, every
#      template renders, names and labels are well formed.
#   2. promtool check config: infra/compose/prometheus.yml with the rule file where the
#      prometheus container of docker-compose.yml sees it (beside the config).
#   3. promtool test rules: infra/prometheus/alerts.test.yml, synthetic series that prove each
#      alert fires when it should and stays silent when it should not.
#   4. the Grafana dashboards (infra/compose/grafana/dashboards/*.json): the JSON parses, its data
#      sources are provisioned, and every query parses as PromQL (`promtool promql format`).
#
# promtool comes from the Go module proxy: `go install` of PROMTOOL_VERSION (a version of the
# github.com/prometheus/prometheus module: v0.3MM.P is Prometheus 3.MM.P) into
# .cache/go-bin/<version>/, built once; a second run finds it there. Go's module and build caches
# (in $HOME) outlive the checkout, so a fresh clone on the same machine only relinks. Exits
# non-zero on any failure.
set -euo pipefail
# shellcheck source=infra/dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Prometheus 3.16.0. docker-compose.yml runs 3.1.0, whose module cannot be `go install`ed (its
# go.mod has replace directives); the rules use nothing newer than Prometheus 2.x.
PROMTOOL_VERSION="${PROMTOOL_VERSION:-v0.316.0}"
PROMTOOL_PACKAGE=github.com/prometheus/prometheus/cmd/promtool
PROMTOOL_DIR="$CACHE_DIR/go-bin/promtool-$PROMTOOL_VERSION"
PROMTOOL="$PROMTOOL_DIR/promtool"
RULES="$REPO_ROOT/infra/prometheus/alerts.yml"
RULE_TESTS="$REPO_ROOT/infra/prometheus/alerts.test.yml"
PROM_CONFIG="$REPO_ROOT/infra/compose/prometheus.yml"
DASHBOARDS="$REPO_ROOT/infra/compose/grafana/dashboards"
DATASOURCES="$REPO_ROOT/infra/compose/grafana/provisioning/datasources/datasources.yml"

ensure_promtool() {
  [[ -x "$PROMTOOL" ]] && return 0
  command -v go >/dev/null 2>&1 || die "go is required to build promtool and was not found on PATH"
  log "promtool: go install $PROMTOOL_PACKAGE@$PROMTOOL_VERSION" \
    "(once; cached in ${PROMTOOL_DIR#"$REPO_ROOT"/})"
  local started=$SECONDS
  mkdir -p "$PROMTOOL_DIR"
  # GOTOOLCHAIN=local: build with the Go on PATH, never fetch another toolchain. CGO_ENABLED=0:
  # a static binary, no C toolchain involved.
  GOBIN="$PROMTOOL_DIR" GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
    go install "$PROMTOOL_PACKAGE@$PROMTOOL_VERSION" \
    || die "promtool: go install $PROMTOOL_PACKAGE@$PROMTOOL_VERSION failed"
  log "promtool: built in $((SECONDS - started)) s"
}

ensure_promtool
if [[ "${1:-}" == "install" ]]; then
  echo "$PROMTOOL"
  exit 0
fi

passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }
indent() { sed 's/^/      | /'; }
rel() { printf '%s' "${1#"$REPO_ROOT"/}"; }

echo "checking $(rel "$RULES") and the dashboards with promtool" \
  "($PROMTOOL_PACKAGE@$PROMTOOL_VERSION)"

# --- 1. rules ------------------------------------------------------------------------------------
if out="$("$PROMTOOL" check rules "$RULES" 2>&1)"; then
  ok "promtool check rules: $(grep -oE '[0-9]+ rules found' <<<"$out" || echo "valid")"
else
  fail "promtool check rules $(rel "$RULES"):"
  printf '%s\n' "$out" | indent
fi

# --- 2. the compose Prometheus config, laid out as in its container ------------------------------
layout="$(mktemp -d)"
trap 'rm -rf "$layout"' EXIT
cp "$PROM_CONFIG" "$layout/prometheus.yml"
cp "$RULES" "$layout/alerts.yml"
if out="$("$PROMTOOL" check config "$layout/prometheus.yml" 2>&1)"; then
  ok "promtool check config: $(rel "$PROM_CONFIG") loads $(rel "$RULES") (rule_files: alerts.yml)"
else
  fail "promtool check config $(rel "$PROM_CONFIG") (with alerts.yml beside it):"
  printf '%s\n' "$out" | indent
fi

# --- 3. unit tests -------------------------------------------------------------------------------
if out="$("$PROMTOOL" test rules "$RULE_TESTS" 2>&1)"; then
  ok "promtool test rules: $(rel "$RULE_TESTS") ($(grep -c '^  - name:' "$RULE_TESTS") tests)"
else
  fail "promtool test rules $(rel "$RULE_TESTS"):"
  printf '%s\n' "$out" | indent
fi

# --- 4. dashboards -------------------------------------------------------------------------------
# Every dashboard JSON parses, uses a provisioned data source, and every query is valid PromQL
# (Grafana's $__ variables stand in as 5m).
for dashboard in "$DASHBOARDS"/*.json; do
  [[ -e "$dashboard" ]] || continue
  # The queries, NUL-separated, into a file (a command substitution would drop the NULs).
  if ! out="$(python3 - "$dashboard" "$DATASOURCES" "$layout/queries" <<'PYEOF' 2>&1
import json, re, sys
dashboard = json.load(open(sys.argv[1]))
uids = set(re.findall(r"^\s*uid:\s*(\S+)", open(sys.argv[2]).read(), re.M))
def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels") or [])
problems, queries = [], []
for p in panels(dashboard.get("panels") or []):
    for t in [p] + (p.get("targets") or []):
        uid = (t.get("datasource") or {}).get("uid")
        if uid and uid not in uids:
            problems.append(f"panel {p.get('title')!r}: data source {uid!r} is not provisioned")
    for t in p.get("targets") or []:
        if t.get("expr"):
            queries.append(re.sub(r"\$__(rate_interval|interval|range)\b", "5m", t["expr"]))
open(sys.argv[3], "w").write("".join(q + "\0" for q in queries))
sys.exit("\n".join(problems) or None)
PYEOF
  )"; then
    fail "$(rel "$dashboard"):"
    printf '%s\n' "$out" | indent
    continue
  fi
  mapfile -d '' -t queries <"$layout/queries"
  bad=()
  for query in "${queries[@]}"; do
    if ! out="$("$PROMTOOL" --experimental promql format "$query" 2>&1)"; then
      bad+=("$query: $out")
    fi
  done
  if ((${#bad[@]} == 0)); then
    ok "$(rel "$dashboard"): parses, provisioned data sources, ${#queries[@]} valid PromQL queries"
  else
    fail "$(rel "$dashboard"): ${#bad[@]} of ${#queries[@]} queries do not parse:"
    printf '%s\n' "${bad[@]}" | indent
  fi
done

printf 'alert rules check: %d passed, %d failed\n' "$passed" "$failed"
((failed == 0))
