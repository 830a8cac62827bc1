#!/usr/bin/env bash
# Placeholder: the lead wires `make run` here.
set -euo pipefail
echo "make run: not yet wired (infra/dev/run.sh)" >&2
exit 1
