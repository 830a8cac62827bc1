#!/usr/bin/env bash
# Jaeger v2 (all-in-one, in-memory storage) for development and tests, built from the Go module
# proxy. No Docker, no release tarball.
#
#   jaeger.sh install                     build the binary into .cache/go-bin/ (no-op when current),
#                                         print its path
#   jaeger.sh start [--name NAME] [--otlp-grpc-port N] [--otlp-http-port N] [--query-port N]
#                   [--query-grpc-port N] [--fresh]
#                                         start instance NAME (default "default") unless it runs,
#                                         wait until the query API answers and the OTLP receiver
#                                         listens, print the OTLP/gRPC endpoint http://127.0.0.1:N
#   jaeger.sh stop [--name NAME]          SIGTERM (SIGKILL after JAEGER_STOP_TIMEOUT s)
#   jaeger.sh status [--name NAME]        whether it runs, its ports and memory (every instance
#                                         without --name)
#
# Ports, all on 127.0.0.1: OTLP/gRPC 14317, OTLP/HTTP the OTLP/gRPC port + 1, query API and UI
# (HTTP: /api/services, /api/traces?service=S, /api/traces/ID, /api/v3/...) 16686, query gRPC
# the query port - 1. An OTLP/HTTP or query gRPC port of 0 means any free port. Starting an
# instance that runs on the same ports only waits for it; on other ports it is an error (stop it
# first); --fresh stops it first. Spans live in memory only: a start is always empty.
#
# Config: infra/jaeger/config.yaml (the ports reach it as environment variables). Logs:
# .dev/logs/jaeger-NAME.log (the previous start's in .log.prev), pid: .dev/run/jaeger-NAME.pid
# ("pid starttime"), ports: .dev/jaeger/NAME/ports.env. Start-up messages go to stderr; stdout
# carries only the endpoint (start) or the binary's path (install).
#
# The binary: the package github.com/jaegertracing/jaeger/cmd/jaeger (Jaeger v2) of the module
# version JAEGER_VERSION. Jaeger tags each release twice, v1.N.0 and v2.M.0, and only the v1 tag
# is a valid version of the module (it has no /v2 path), so v1.75.0 is Jaeger v2.12.0. The
# module's go.mod has a replace directive, which `go install pkg@version` refuses, so it is built
# inside a throwaway module that requires it with the same requirements and replace; once, into
# .cache/go-bin/jaeger-<version>/ (a stamp there records what was built). Go's module and build
# caches (in $HOME) outlive the checkout, so another clone on the same machine only relinks.
#
# Environment: JAEGER_VERSION / JAEGER_RELEASE (module version / the version the binary reports),
# JAEGER_START_TIMEOUT (s, default 60), JAEGER_STOP_TIMEOUT (s, default 10), JAEGER_MAX_TRACES
# (default 50000), JAEGER_LOG_LEVEL (default info).
set -euo pipefail
# shellcheck source=infra/dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

JAEGER_MODULE=github.com/jaegertracing/jaeger
JAEGER_PACKAGE="$JAEGER_MODULE/cmd/jaeger"
JAEGER_VERSION="${JAEGER_VERSION:-v1.75.0}"
JAEGER_RELEASE="${JAEGER_RELEASE:-v2.12.0}"
JAEGER_DIR="$CACHE_DIR/go-bin/jaeger-$JAEGER_VERSION"
JAEGER_BIN="$JAEGER_DIR/jaeger"
JAEGER_STAMP="$JAEGER_DIR/stamp"
JAEGER_CONFIG="$REPO_ROOT/infra/jaeger/config.yaml"
INSTANCES_DIR="$STATE_DIR/jaeger"
# -s -w: no symbol table or DWARF (a third smaller; panics still have their stack traces).
BUILD_LDFLAGS="-s -w -X $JAEGER_MODULE/internal/version.latestVersion=$JAEGER_RELEASE"

# The instance being worked on and its ports (set by parse_args / load_ports_file).
NAME=default OTLP_GRPC_PORT="" OTLP_HTTP_PORT="" QUERY_PORT="" QUERY_GRPC_PORT="" FRESH=0

usage() { sed -n '2,37s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

# --- the binary ---------------------------------------------------------------------------------

build_key() { printf '%s@%s %s\n' "$JAEGER_PACKAGE" "$JAEGER_VERSION" "$BUILD_LDFLAGS"; }

binary_current() { [[ -x "$JAEGER_BIN" && "$(cat "$JAEGER_STAMP" 2>/dev/null)" == "$(build_key)" ]]; }

ensure_jaeger() {
  binary_current && return 0
  command -v go >/dev/null 2>&1 || die "go is required to build Jaeger and was not found on PATH"
  mkdir -p "$JAEGER_DIR"
  exec 7>"$JAEGER_DIR/build.lock"
  flock -n 7 || { log "jaeger: waiting for another jaeger.sh that builds $JAEGER_VERSION"; flock 7; }
  if binary_current; then
    exec 7>&-
    return 0
  fi
  log "jaeger: building $JAEGER_PACKAGE@$JAEGER_VERSION (Jaeger $JAEGER_RELEASE; once, cached in ${JAEGER_DIR#"$REPO_ROOT"/})"
  local started=$SECONDS src gomod
  # GOTOOLCHAIN=local: build with the Go on PATH, never fetch another toolchain. CGO_ENABLED=0:
  # a static binary, no C toolchain involved.
  local goenv=(env GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=mod")
  gomod="$("${goenv[@]}" go mod download -json "$JAEGER_MODULE@$JAEGER_VERSION" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')" || true
  [[ -f "$gomod" ]] || die "jaeger: go mod download $JAEGER_MODULE@$JAEGER_VERSION failed (Go module proxy reachable?)"
  src="$(mktemp -d "$JAEGER_DIR/build.XXXXXX")"
  # The throwaway main module: Jaeger's own go.mod (its requirements and replace directives)
  # under another name, plus Jaeger itself; so the build list is exactly Jaeger's.
  sed 's|^module .*|module brain.invalid/jaeger-build|' "$gomod" >"$src/go.mod"
  printf '\nrequire %s %s\n' "$JAEGER_MODULE" "$JAEGER_VERSION" >>"$src/go.mod"
  if ! (cd "$src" && "${goenv[@]}" go build -trimpath -ldflags "$BUILD_LDFLAGS" \
    -o "$JAEGER_BIN.new" "$JAEGER_PACKAGE"); then
    rm -rf "${src:?}" "$JAEGER_BIN.new"
    die "jaeger: building $JAEGER_PACKAGE@$JAEGER_VERSION failed"
  fi
  rm -rf "${src:?}"
  mv -f "$JAEGER_BIN.new" "$JAEGER_BIN"
  build_key >"$JAEGER_STAMP"
  exec 7>&-
  log "jaeger: built in $((SECONDS - started)) s ($(du -h "$JAEGER_BIN" | cut -f1))"
}

# --- instances ----------------------------------------------------------------------------------

pid_name() { echo "jaeger-$NAME"; }
instance_dir() { echo "$INSTANCES_DIR/$NAME"; }
log_file() { echo "$LOG_DIR/jaeger-$NAME.log"; }

parse_args() {
  local cmd="$1"
  shift
  while (($#)); do
    case "$1" in
      --name) NAME="${2:-}"; shift 2 || die "--name needs a value" ;;
      --name=*) NAME="${1#*=}"; shift ;;
      --otlp-grpc-port | --otlp-http-port | --query-port | --query-grpc-port)
        [[ "$cmd" == start ]] || die "$cmd: unknown option $1"
        (($# >= 2)) || die "$1 needs a value"
        set_port "$1" "$2"
        shift 2
        ;;
      --otlp-grpc-port=* | --otlp-http-port=* | --query-port=* | --query-grpc-port=*)
        [[ "$cmd" == start ]] || die "$cmd: unknown option ${1%%=*}"
        set_port "${1%%=*}" "${1#*=}"
        shift
        ;;
      --fresh) [[ "$cmd" == start ]] || die "$cmd: unknown option $1"; FRESH=1; shift ;;
      *) die "$cmd: unknown argument $1 (see jaeger.sh --help)" ;;
    esac
  done
  [[ "$NAME" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "--name: letters, digits, '.', '_' and '-' only"
}

set_port() {
  if ! [[ "$2" =~ ^(0|[1-9][0-9]*)$ ]] || (($2 > 65535)); then
    die "$1: '$2' is not a port"
  fi
  case "$1" in
    --otlp-grpc-port) OTLP_GRPC_PORT="$2" ;;
    --otlp-http-port) OTLP_HTTP_PORT="$2" ;;
    --query-port) QUERY_PORT="$2" ;;
    --query-grpc-port) QUERY_GRPC_PORT="$2" ;;
  esac
}

default_ports() {
  OTLP_GRPC_PORT="${OTLP_GRPC_PORT:-14317}"
  QUERY_PORT="${QUERY_PORT:-16686}"
  ((OTLP_GRPC_PORT > 0)) || die "--otlp-grpc-port must not be 0 (it is the endpoint printed)"
  ((QUERY_PORT > 0)) || die "--query-port must not be 0"
  OTLP_HTTP_PORT="${OTLP_HTTP_PORT:-$((OTLP_GRPC_PORT < 65535 ? OTLP_GRPC_PORT + 1 : 0))}"
  QUERY_GRPC_PORT="${QUERY_GRPC_PORT:-$((QUERY_PORT - 1))}"
  local fixed=() p
  for p in "$OTLP_GRPC_PORT" "$OTLP_HTTP_PORT" "$QUERY_PORT" "$QUERY_GRPC_PORT"; do
    ((p == 0)) || fixed+=("$p")
  done
  [[ "$(printf '%s\n' "${fixed[@]}" | sort -u | wc -l)" == "${#fixed[@]}" ]] \
    || die "the ports must differ: OTLP/gRPC $OTLP_GRPC_PORT, OTLP/HTTP $OTLP_HTTP_PORT, query $QUERY_PORT, query gRPC $QUERY_GRPC_PORT"
}

ports_line() { printf 'OTLP_GRPC_PORT=%s OTLP_HTTP_PORT=%s QUERY_PORT=%s QUERY_GRPC_PORT=%s' \
  "$OTLP_GRPC_PORT" "$OTLP_HTTP_PORT" "$QUERY_PORT" "$QUERY_GRPC_PORT"; }

# Reads the ports of the running instance into RUN_* variables.
load_ports_file() {
  local file line key value
  file="$(instance_dir)/ports.env"
  RUN_OTLP_GRPC_PORT="" RUN_OTLP_HTTP_PORT="" RUN_QUERY_PORT="" RUN_QUERY_GRPC_PORT=""
  [[ -f "$file" ]] || return 1
  read -r line <"$file" || true
  for key in $line; do
    value="${key#*=}" key="${key%%=*}"
    case "$key" in
      OTLP_GRPC_PORT) RUN_OTLP_GRPC_PORT="$value" ;;
      OTLP_HTTP_PORT) RUN_OTLP_HTTP_PORT="$value" ;;
      QUERY_PORT) RUN_QUERY_PORT="$value" ;;
      QUERY_GRPC_PORT) RUN_QUERY_GRPC_PORT="$value" ;;
    esac
  done
  [[ -n "$RUN_OTLP_GRPC_PORT" && -n "$RUN_QUERY_PORT" ]]
}

lock_instance() {
  mkdir -p "$RUN_DIR"
  exec 8>"$RUN_DIR/jaeger-$NAME.lock"
  flock -n 8 || { log "jaeger: waiting for another jaeger.sh on instance $NAME"; flock 8; }
}

# True when a socket listens on 127.0.0.1:$1 (ss; a connection attempt where ss is missing).
port_listening() {
  if command -v ss >/dev/null 2>&1; then
    [[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]]
  else
    port_open "$1"
  fi
}

require_ports_free() {
  local p
  for p in "$OTLP_GRPC_PORT" "$OTLP_HTTP_PORT" "$QUERY_PORT" "$QUERY_GRPC_PORT"; do
    ((p == 0)) && continue
    if port_listening "$p"; then
      log "jaeger: port $p (instance $NAME) is taken by a process jaeger.sh did not start:"
      ss -Hltnp "sport = :$p" >&2 2>/dev/null || true
      exit 1
    fi
  done
}

api_answers() { curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$1/api/services" 2>/dev/null; }

# Ready: the process runs, the query API answers and the OTLP receivers listen (the collector
# starts its extensions, the query API among them, before its receivers).
ready() {
  our_pid "$(pid_name)" >/dev/null && api_answers "$QUERY_PORT" && port_listening "$OTLP_GRPC_PORT" \
    && { ((OTLP_HTTP_PORT == 0)) || port_listening "$OTLP_HTTP_PORT"; }
}

wait_ready() {
  local timeout="${JAEGER_START_TIMEOUT:-60}" deadline
  deadline=$(($(now_ms) + timeout * 1000))
  until ready; do
    if ! our_pid "$(pid_name)" >/dev/null; then
      log "jaeger: instance $NAME exited during start-up; last lines of ${LOG_DIR#"$REPO_ROOT"/}/jaeger-$NAME.log:"
      tail -n 30 "$(log_file)" | sed 's/^/  | /' >&2
      rm -f "$RUN_DIR/$(pid_name).pid"
      return 1
    fi
    if (($(now_ms) >= deadline)); then
      log "jaeger: instance $NAME not ready within $timeout s (JAEGER_START_TIMEOUT); last lines of its log:"
      tail -n 15 "$(log_file)" | sed 's/^/  | /' >&2
      return 1
    fi
    sleep 0.1
  done
}

launch() {
  local log pid
  log="$(log_file)"
  mkdir -p "$LOG_DIR" "$(instance_dir)"
  [[ -f "$log" ]] && mv -f "$log" "$log.prev"
  ports_line >"$(instance_dir)/ports.env"
  echo >>"$(instance_dir)/ports.env"
  printf '=== %s jaeger.sh: starting instance %s (Jaeger %s, %s) ===\n' \
    "$(date -Is)" "$NAME" "$JAEGER_RELEASE" "$(ports_line)" >>"$log"
  # The subshell execs into setsid, which (not being a group leader) execs env, which execs
  # jaeger: $! is jaeger's pid. fds 6-9 are our and our callers' locks: jaeger must not hold them.
  (cd "$(instance_dir)" && exec setsid env \
    JAEGER_OTLP_GRPC_ENDPOINT="127.0.0.1:$OTLP_GRPC_PORT" \
    JAEGER_OTLP_HTTP_ENDPOINT="127.0.0.1:$OTLP_HTTP_PORT" \
    JAEGER_QUERY_HTTP_ENDPOINT="127.0.0.1:$QUERY_PORT" \
    JAEGER_QUERY_GRPC_ENDPOINT="127.0.0.1:$QUERY_GRPC_PORT" \
    JAEGER_MAX_TRACES="${JAEGER_MAX_TRACES:-50000}" \
    JAEGER_LOG_LEVEL="${JAEGER_LOG_LEVEL:-info}" \
    "$JAEGER_BIN" --config "$JAEGER_CONFIG") >>"$log" 2>&1 </dev/null 6>&- 7>&- 8>&- 9>&- &
  pid=$!
  write_pid "$(pid_name)" "$pid"
}

# SIGTERM (SIGKILL after JAEGER_STOP_TIMEOUT s) the instance if it runs; waits until its ports
# are released.
stop_instance() {
  local pid signal=TERM deadline
  if ! pid="$(our_pid "$(pid_name)")"; then
    rm -f "$RUN_DIR/$(pid_name).pid"
    return 1
  fi
  load_ports_file || true
  kill -s TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + ${JAEGER_STOP_TIMEOUT:-10}))
  while our_pid "$(pid_name)" >/dev/null; do
    if [[ "$signal" == TERM ]] && ((SECONDS >= deadline)); then
      log "jaeger: instance $NAME still running ${JAEGER_STOP_TIMEOUT:-10} s after SIGTERM; sending SIGKILL"
      kill -s KILL "$pid" 2>/dev/null || true
      signal=KILL
    fi
    sleep 0.1
  done
  rm -f "$RUN_DIR/$(pid_name).pid"
  deadline=$((SECONDS + 10))
  local p
  for p in "$RUN_OTLP_GRPC_PORT" "$RUN_QUERY_PORT"; do
    [[ -n "$p" ]] || continue
    while port_listening "$p" && ((SECONDS < deadline)); do sleep 0.1; done
  done
  log "jaeger: instance $NAME stopped (SIG$signal)"
}

# --- subcommands --------------------------------------------------------------------------------

cmd_install() {
  (($# == 0)) || die "usage: jaeger.sh install"
  ensure_jaeger
  echo "$JAEGER_BIN"
}

cmd_start() {
  parse_args start "$@"
  default_ports
  local started
  started="$(now_ms)"
  lock_instance
  # stdout is the endpoint only: whatever building prints goes to stderr.
  ensure_jaeger >&2
  [[ -f "$JAEGER_CONFIG" ]] || die "missing $JAEGER_CONFIG"
  if ((FRESH)); then
    stop_instance || true
  fi
  if our_pid "$(pid_name)" >/dev/null; then
    load_ports_file || die "instance $NAME runs but $(instance_dir)/ports.env is missing; stop it first"
    if [[ "$RUN_OTLP_GRPC_PORT $RUN_OTLP_HTTP_PORT $RUN_QUERY_PORT $RUN_QUERY_GRPC_PORT" \
      != "$OTLP_GRPC_PORT $OTLP_HTTP_PORT $QUERY_PORT $QUERY_GRPC_PORT" ]]; then
      die "instance $NAME runs with other ports ($(cat "$(instance_dir)/ports.env")); stop it first, or start it with --fresh"
    fi
    wait_ready || die "instance $NAME runs but is not ready"
    log "jaeger: instance $NAME already running"
  else
    rm -f "$RUN_DIR/$(pid_name).pid"
    require_ports_free
    launch
    if ! wait_ready; then
      stop_instance || true
      die "instance $NAME did not start (log: ${LOG_DIR#"$REPO_ROOT"/}/jaeger-$NAME.log)"
    fi
    log "jaeger: instance $NAME (Jaeger $JAEGER_RELEASE) ready in $(since "$started") s:" \
      "OTLP/gRPC 127.0.0.1:$OTLP_GRPC_PORT, OTLP/HTTP 127.0.0.1:$OTLP_HTTP_PORT," \
      "query http://127.0.0.1:$QUERY_PORT"
  fi
  echo "http://127.0.0.1:$OTLP_GRPC_PORT"
}

cmd_stop() {
  parse_args stop "$@"
  lock_instance
  stop_instance || log "jaeger: instance $NAME is not running"
}

status_row() {
  local pid state rss=-
  load_ports_file || true
  if pid="$(our_pid "$(pid_name)")"; then
    if [[ -n "$RUN_QUERY_PORT" ]] && api_answers "$RUN_QUERY_PORT"; then state=running; else state=starting; fi
    rss="$(awk '/^VmRSS:/ { printf "%d MiB", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null || echo -)"
  else
    pid=-
    if [[ -f "$RUN_DIR/$(pid_name).pid" ]]; then state=crashed; else state=stopped; fi
  fi
  printf '%-12s %-8s %-10s %-10s %-7s %-11s %-9s %s\n' "$NAME" "$pid" "${RUN_OTLP_GRPC_PORT:--}" \
    "${RUN_OTLP_HTTP_PORT:--}" "${RUN_QUERY_PORT:--}" "${RUN_QUERY_GRPC_PORT:--}" "$rss" "$state"
}

cmd_status() {
  local named=0 arg names=() d
  for arg in "$@"; do [[ "$arg" == --name* ]] && named=1; done
  parse_args status "$@"
  if ((named)); then
    names=("$NAME")
  else
    for d in "$INSTANCES_DIR"/*/ports.env; do [[ -f "$d" ]] && { d="${d%/ports.env}"; names+=("${d##*/}"); }; done
  fi
  if ((${#names[@]} == 0)); then
    log "jaeger: no instances in ${INSTANCES_DIR#"$REPO_ROOT"/}"
    return 0
  fi
  printf '%-12s %-8s %-10s %-10s %-7s %-11s %-9s %s\n' INSTANCE PID OTLP-GRPC OTLP-HTTP QUERY QUERY-GRPC RSS STATE
  for NAME in "${names[@]}"; do status_row; done
  local built="not built"
  binary_current && built="${JAEGER_BIN#"$REPO_ROOT"/}"
  echo "(Jaeger $JAEGER_RELEASE, $JAEGER_MODULE $JAEGER_VERSION: $built; stopped = not running;" \
    "crashed = started by jaeger.sh but gone, see ${LOG_DIR#"$REPO_ROOT"/}/jaeger-<instance>.log)"
}

main() {
  local sub="${1:-}"
  (($#)) && shift
  case "$sub" in
    install) cmd_install "$@" ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
