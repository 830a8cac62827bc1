#!/usr/bin/env bash
# `make chaos`: the chaos run with its independent invariant checker (tests/src/chaos/).
# Arguments go to the runner: --seed N replays a schedule, --smoke is the short run,
# --changes/--loans/--rate/--kills scale it, --broker-restarts/--rolling-restarts/--leader-changes
# tune the broker faults and --no-broker-faults leaves them out. Exits non-zero on any violation.
# The run's broker is a 3-node Apache Kafka cluster of its own (cluster `chaos`, ports 19292-19297,
# replication factor 3, min.insync.replicas 2); the runner finds it through BRAIN_TEST_KAFKA_* and
# kills/restarts its nodes with infra/kafka/kafka.sh kill|start-node|elect-leaders chaos --node K.
# BRAIN_BROKER=tansu runs on tansu instead (opt-in): with --broker-restarts N it stores on a local
# S3 server (moto_server, installed here into .cache/chaos-venv from requirements-chaos.txt) and
# tansu's own losses are reported, not counted.
set -euo pipefail
# shellcheck source=infra/dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
bash infra/dev/setup.sh
cargo build --workspace --bins
bash infra/dev/stack.sh up postgres   # installs the server binaries the run's own cluster uses

start_private_emulator
trap 'stop_private_emulator; stop_test_kafka' EXIT
if [[ "${BRAIN_BROKER:-kafka}" == tansu ]]; then
  # --broker-restarts N (N > 0) needs the local S3 server for tansu's storage.
  broker_restarts=0
  args=("$@")
  for i in "${!args[@]}"; do
    case "${args[$i]}" in
      --broker-restarts=*) broker_restarts="${args[$i]#*=}" ;;
      --broker-restarts) broker_restarts="${args[$((i + 1))]:-0}" ;;
    esac
  done
  if [[ "$broker_restarts" =~ ^[0-9]+$ ]] && ((broker_restarts > 0)); then
    chaos_venv="$CACHE_DIR/chaos-venv"
    ensure_venv chaos-venv "$chaos_venv" "$DEV_DIR/requirements-chaos.txt"
    export BRAIN_MOTO_SERVER="$chaos_venv/bin/moto_server"
  fi
else
  start_test_kafka chaos 19292 3
fi
"${CARGO_TARGET_DIR:-target}/debug/chaos" "$@"
