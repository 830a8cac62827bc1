# Developer entry points. The scripts behind them live in infra/dev/ (no Docker needed).
#   make up                          setup + build + start the whole local stack
#   make up COMPONENTS="postgres broker emulator"
#   eval "$(infra/dev/stack.sh env)" exports the stack's settings into your shell
#   make up KAFKA_NODES=3            the broker as a 3-node Apache Kafka cluster (KAFKA_FRESH=1:
#                                    recreate it empty; BRAIN_BROKER=tansu: the old tansu broker)
# Variables given on make's command line reach the scripts' environment (make exports them).

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules
.NOTPARALLEL:

COMPONENTS ?=

.PHONY: help setup build up down status logs test run bench chaos

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup: ## Install tooling into .cache/ (apt packages if missing, Kafka jars, venv, emulator)
	bash infra/dev/setup.sh

build: ## Build all workspace binaries
	cargo build --workspace --bins

up: setup build ## Start the local stack (all, or COMPONENTS="..."; KAFKA_NODES=3: 3 Kafka nodes)
	bash infra/dev/stack.sh up $(COMPONENTS)

down: ## Stop what `make up` started (a system PostgreSQL is left alone)
	bash infra/dev/stack.sh down $(COMPONENTS)

status: ## Show component, pid, port, state, URL
	bash infra/dev/stack.sh status

logs: ## Show the tail of each component's log (.dev/logs/)
	bash infra/dev/stack.sh logs $(COMPONENTS)

test: ## Every test on real infrastructure (what CI runs)
	bash infra/dev/test.sh

run: ## The whole system locally, a scripted scenario through it, lag figures
	bash infra/dev/run.sh

bench: ## Benchmarks against the limit and a peer (not part of make test)
	bash infra/dev/bench.sh

chaos: ## Chaos run with the invariant checker (ARGS="--seed N" replays, ARGS="--smoke" is short)
	bash infra/dev/chaos.sh $(ARGS)
