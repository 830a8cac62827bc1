#!/usr/bin/env bash
# `make test`: every test, on real parts, from a fresh clone. Installs what is missing, ensures
# PostgreSQL, starts a Firestore emulator and an Apache Kafka cluster of its own (cluster `test`,
# one node from TEST_KAFKA_PORT, default 19092; the tests find it through BRAIN_TEST_KAFKA_*), then
# runs (Jaeger v2 is built once for the traces test): the schema compatibility check, clippy, all unit/property/integration/system tests (each
# system test starts its own database, registry and simulator), the compose-file validation, the
# Prometheus rules' checks and unit tests with the dashboards' queries (promtool, built once into
# .cache/go-bin/) and the lint of the shell scripts (shellcheck).
set -euo pipefail
# shellcheck source=infra/dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
started=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$*" "$(($(date +%s) - started))"; }

# In CI each run is a fresh clone: keep compiled dependencies between runs on the same machine.
if [[ "${CI:-}" == "true" && -z "${CARGO_TARGET_DIR:-}" ]]; then
  export CARGO_TARGET_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/brain/target"
fi

step "setup"
bash infra/dev/setup.sh
# Jaeger v2 for tests/it/traces.rs (built once from the Go module proxy into .cache/go-bin; the
# test starts an instance of its own with infra/dev/jaeger.sh start).
bash infra/dev/jaeger.sh install >/dev/null

step "build"
cargo build --workspace --bins --tests

step "postgres"
# shellcheck source=infra/dev/ports.env
source infra/dev/ports.env
# A PostgreSQL already running (the dev stack's) is used and left running; one started here is
# stopped when the tests end.
pg_started_here=0
port_open "$PG_PORT" || pg_started_here=1
bash infra/dev/stack.sh up postgres
export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
stop_test_postgres() {
  if [[ "$pg_started_here" == 1 ]]; then bash infra/dev/stack.sh down postgres >/dev/null 2>&1 || true; fi
}

step "firestore emulator (tests' own)"
start_private_emulator
trap 'stop_private_emulator; stop_test_kafka; stop_test_postgres' EXIT

step "kafka (tests' own cluster)"
start_test_kafka test "${TEST_KAFKA_PORT:-19092}" 1

step "schema compatibility (BACKWARD_TRANSITIVE against main)"
"${CARGO_TARGET_DIR:-target}/debug/schema-check"

step "clippy"
cargo clippy --workspace --all-targets -q -- -D warnings

step "compose files"
if [[ -x infra/dev/check-compose.sh ]]; then bash infra/dev/check-compose.sh; fi

step "kubernetes manifests (kustomize build + kubeconform -strict)"
bash infra/dev/check-k8s.sh

step "alert rules and dashboards (promtool check + rule unit tests)"
bash infra/dev/check-alerts.sh

step "shell scripts (shellcheck)"
if apt_ensure shellcheck; then
  shellcheck -x .ci/run infra/dev/*.sh infra/kafka/kafka.sh bench/peer/connect/connect.sh
else
  log "shellcheck: could not be installed; skipped"
fi

step "unit, property and integration tests"
cargo test --workspace --exclude system-tests --no-fail-fast

step "system tests (each prints its invariant counts)"
RUST_LOG="${RUST_LOG:-warn}" cargo test -p system-tests --no-fail-fast -- --nocapture

step "done"
