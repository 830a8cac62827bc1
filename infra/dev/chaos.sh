#!/usr/bin/env bash
# `make chaos`: the chaos run with its independent invariant checker (tests/src/chaos/).
# Arguments go to the runner: --seed N replays a schedule, --smoke is the short run,
# --changes/--loans/--rate/--kills scale it, --broker-restarts N adds the opt-in broker-restart
# scenario (kill -9 of the broker, which then stores on a local S3 server: moto_server, installed
# here into .cache/chaos-venv from infra/dev/requirements-chaos.txt). Exits non-zero on any
# violation (the dev broker's own losses in that scenario are reported, not counted).
set -euo pipefail
# shellcheck source=infra/dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
bash infra/dev/setup.sh
cargo build --workspace --bins
bash infra/dev/stack.sh up postgres   # installs the server binaries the run's own cluster uses

# --broker-restarts N (N > 0) needs the local S3 server; the default run does not.
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

start_private_emulator
trap stop_private_emulator EXIT
"${CARGO_TARGET_DIR:-target}/debug/chaos" "$@"
