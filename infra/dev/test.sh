#!/usr/bin/env bash
# Placeholder: the lead wires `make test` here.
set -euo pipefail
echo "make test: not yet wired (infra/dev/test.sh)" >&2
exit 1
