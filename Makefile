# Developer entry points. The scripts behind them live in infra/dev/ (no Docker needed).
#   make up                          setup + build + start the whole local stack
#   make up COMPONENTS="postgres broker emulator"
#   eval "$(infra/dev/stack.sh env)" exports the stack's settings into your shell

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules
.NOTPARALLEL:

COMPONENTS ?=

.PHONY: help setup build up down status logs test run bench

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup: ## Install tooling into .cache/ (apt packages if missing, venv with tansu, emulator)
	bash infra/dev/setup.sh

build: ## Build all workspace binaries
	cargo build --workspace --bins

up: setup build ## Start the local stack (all, or COMPONENTS="...")
	bash infra/dev/stack.sh up $(COMPONENTS)

down: ## Stop what `make up` started (a system PostgreSQL is left alone)
	bash infra/dev/stack.sh down $(COMPONENTS)

status: ## Show component, pid, port, state, URL
	bash infra/dev/stack.sh status

logs: ## Show the tail of each component's log (.dev/logs/)
	bash infra/dev/stack.sh logs $(COMPONENTS)

# ---- Placeholders: the lead wires these up (each script currently exits 1) ----
test: ## (not yet wired) run the test suites
	bash infra/dev/test.sh

run: ## (not yet wired) run the system locally
	bash infra/dev/run.sh

bench: ## (not yet wired) run the benchmarks
	bash infra/dev/bench.sh
