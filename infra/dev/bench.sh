#!/usr/bin/env bash
# `make bench`: Brain's benchmarks in one run on this machine (see docs/benchmarks.md). Installs
# what is missing (setup.sh: venv with the Python peers' packages, Kafka's jars, which also give
# kafka-consumer-perf-test, the emulator), builds the bench and the services in release, ensures
# PostgreSQL, starts a Firestore emulator and a one-node Apache Kafka cluster of its own (cluster
# `bench`, port 19192, BRAIN_TEST_KAFKA_*), then runs the bench, which prints a table and writes
# bench-results/<timestamp>-<commit>.json. The HTTP load client is the bench's own: nothing else
# to install.
#
# Arguments go to the bench: `bash infra/dev/bench.sh --smoke`, `--records 50000`, `--help`.
# BENCH_PROFILE=debug skips the release build (figures are then not representative).
set -euo pipefail
# shellcheck source=infra/dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
started=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$*" "$(($(date +%s) - started))" >&2; }

# In CI each run is a fresh clone: keep compiled dependencies between runs on the same machine.
if [[ "${CI:-}" == "true" && -z "${CARGO_TARGET_DIR:-}" ]]; then
  export CARGO_TARGET_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/brain/target"
fi
target_dir="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
profile="${BENCH_PROFILE:-release}"
[[ "$profile" == release || "$profile" == debug ]] || die "BENCH_PROFILE must be release or debug"

step "setup"
bash infra/dev/setup.sh

step "build ($profile: the bench and the services it starts)"
build_started=$SECONDS
profile_flag=()
[[ "$profile" == release ]] && profile_flag=(--release)
cargo build "${profile_flag[@]}" -p brain-bench -p ventures-sync -p projection-writer -p api-gateway -p qbo-mirror -p graph-calendar
log "build: $((SECONDS - build_started)) s"

step "postgres"
bash infra/dev/stack.sh up postgres
# shellcheck source=infra/dev/ports.env
source infra/dev/ports.env
export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"

step "firestore emulator (the bench's own)"
emulator_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$LOG_DIR"
node "$EMULATOR_DIR/launcher.mjs" --port "$emulator_port" >"$LOG_DIR/bench-emulator.log" 2>&1 &
emulator_pid=$!
trap 'kill "$emulator_pid" 2>/dev/null || true; stop_test_kafka' EXIT
# The port goes in as the inner shell's $1 (single quotes on purpose).
# shellcheck disable=SC2016
port_open() { timeout 1 bash -c ': >"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }
for _ in $(seq 600); do # up to a minute: node starts slowly on a busy machine
  port_open "$emulator_port" && break
  sleep 0.1
done
port_open "$emulator_port" || die "the Firestore emulator did not start (see $LOG_DIR/bench-emulator.log)"
export FIRESTORE_EMULATOR_HOST="127.0.0.1:$emulator_port"

step "kafka (the bench's own cluster)"
start_test_kafka bench 19192 1

# The system-test harness starts services from <CARGO_TARGET_DIR>/debug/; point that at the
# profile just built, for the bench process only (cargo itself never sees this directory).
shim="$CACHE_DIR/bench-target"
mkdir -p "$shim"
ln -sfn "$target_dir/$profile" "$shim/debug"

step "bench"
CARGO_TARGET_DIR="$shim" RUST_LOG="${RUST_LOG:-warn}" BRAIN_TEST_RUST_LOG="${BRAIN_TEST_RUST_LOG:-info}" \
  "$target_dir/$profile/brain-bench" "$@"

step "done"
