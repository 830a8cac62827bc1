#!/usr/bin/env bash
# `make chaos`: the chaos run with its independent invariant checker (tests/src/chaos/).
# Arguments go to the runner: --seed N replays a schedule, --smoke is the short run,
# --changes/--loans/--rate/--kills scale it. Exits non-zero on any violation.
set -euo pipefail
# shellcheck source=infra/dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
bash infra/dev/setup.sh
cargo build --workspace --bins
bash infra/dev/stack.sh up postgres   # installs the server binaries the run's own cluster uses
start_private_emulator
trap stop_private_emulator EXIT
"${CARGO_TARGET_DIR:-target}/debug/chaos" "$@"
