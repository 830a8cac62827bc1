#!/usr/bin/env bash
# Placeholder: the lead wires `make bench` here.
set -euo pipefail
echo "make bench: not yet wired (infra/dev/bench.sh)" >&2
exit 1
