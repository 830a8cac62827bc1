#!/usr/bin/env bash
# `make run`: bring up the whole dev stack, drive the scripted scenario through it, print what
# happened, and leave the stack running with the URLs to look at.
set -euo pipefail
# shellcheck source=infra/dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

bash infra/dev/setup.sh
cargo build --workspace --bins
bash infra/dev/stack.sh up
# shellcheck source=infra/dev/ports.env
source infra/dev/ports.env
export FIRESTORE_EMULATOR_HOST="127.0.0.1:$EMULATOR_PORT"
export SCENARIO_SIMULATOR_URL="http://127.0.0.1:$VENTURES_PORT"
export SCENARIO_GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT"
export SCENARIO_OIDC_URL="http://127.0.0.1:$OIDC_PORT"
export SCENARIO_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/brain"
echo
target/debug/scenario "$@"
echo
bash infra/dev/stack.sh status
cat <<TXT

The stack is still running. Try (the gateway wants a token from the dev issuer):
  TOKEN=\$(target/debug/dev-oidc mint --role staff --tenant default --url http://127.0.0.1:$OIDC_PORT)
  curl -s -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:$GATEWAY_PORT/api/v1/applications/<application id>
  curl -s http://127.0.0.1:$VENTURES_SYNC_OPS_PORT/metrics | grep ventures_sync_
  curl -s http://127.0.0.1:$PROJECTION_WRITER_OPS_PORT/metrics | grep projection_writer_
  target/debug/dev-oidc mint --role ops --tenant default --url http://127.0.0.1:$OIDC_PORT   # then paste it into:
  http://127.0.0.1:$GATEWAY_PORT/ops     # the ops page: sync health, dead letters, dry runs and replays
  make logs      # every component's log tail (.dev/logs/)
  make down      # stop everything make run started
TXT
