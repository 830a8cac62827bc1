#!/usr/bin/env bash
# The local development stack, without Docker.
#
#   stack.sh up [component...]   start (default: all) in order; a no-op for what already answers
#   stack.sh down [component...] stop what this script started (default: all), in reverse order
#   stack.sh status              table of component, pid, port, state, URL
#   stack.sh env                 `export` lines: eval "$(infra/dev/stack.sh env)"
#   stack.sh logs [-f] [component...]
#
# Components, in start order: postgres broker registry emulator ventures-sim services
# (services = ventures-sync projection-writer api-gateway). Ports: infra/dev/ports.env, each
# overridable from the environment. State lives in .dev/: run/<component>.pid ("pid starttime",
# so a recycled pid is never signalled), logs/<component>.log, secrets.env (mode 600).
# A PostgreSQL already answering on PG_PORT is used as it is and never stopped; otherwise a
# project-local cluster (trust auth, data in .cache/pg/data) is started and owned by this script.
set -euo pipefail
# shellcheck source=infra/dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_COMPONENTS=(postgres broker registry emulator ventures-sim ventures-sync projection-writer api-gateway)
SERVICES=(ventures-sync projection-writer api-gateway)
BIN_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug"
PG_DATA="${PG_DATA_DIR:-$CACHE_DIR/pg/data}"
PG_BIN=""
declare -A LOG_OFFSET=()
CMD=()

usage() { sed -n '2,8s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

# --- component table ----------------------------------------------------------------------------

port_of() {
  case "$1" in
    postgres) echo "$PG_PORT" ;;
    broker) echo "$BROKER_PORT" ;;
    registry) echo "$REGISTRY_PORT" ;;
    emulator) echo "$EMULATOR_PORT" ;;
    ventures-sim) echo "$VENTURES_PORT" ;;
    ventures-sync) echo "$VENTURES_SYNC_OPS_PORT" ;;
    projection-writer) echo "$PROJECTION_WRITER_OPS_PORT" ;;
    api-gateway) echo "$GATEWAY_PORT" ;;
  esac
}

url_of() {
  local port
  port="$(port_of "$1")"
  case "$1" in
    postgres) echo "postgres://postgres@127.0.0.1:$port/brain" ;;
    broker) echo "tcp://127.0.0.1:$port" ;;
    emulator) echo "grpc://127.0.0.1:$port (FIRESTORE_EMULATOR_HOST)" ;;
    *) echo "http://127.0.0.1:$port" ;;
  esac
}

# READY_TIMEOUT (seconds), if set, overrides the per-component default.
timeout_of() {
  if [[ -n "${READY_TIMEOUT:-}" ]]; then
    echo "$READY_TIMEOUT"
    return 0
  fi
  case "$1" in
    postgres | registry) echo 60 ;;
    broker | emulator | ventures-sim) echo 30 ;;
    *) echo 120 ;;
  esac
}

# Components that must answer before this one starts.
deps_of() {
  case "$1" in
    registry) echo postgres ;;
    ventures-sync) echo postgres broker registry ventures-sim ;;
    projection-writer) echo postgres broker registry emulator ;;
    api-gateway) echo postgres broker registry ;;
  esac
}

binary_of() {
  case "$1" in
    registry) echo "$BIN_DIR/schema-registry" ;;
    ventures-sim) echo "$BIN_DIR/ventures-simulator" ;;
    ventures-sync | projection-writer | api-gateway) echo "$BIN_DIR/$1" ;;
  esac
}

# KEY=VALUE lines of the component's environment (also printed by `env`).
component_env() {
  local db="postgres://postgres@127.0.0.1:$PG_PORT/brain"
  case "$1" in
    registry)
      echo "SCHEMA_REGISTRY__DATABASE_URL=$db"
      echo "SCHEMA_REGISTRY__LISTEN_ADDR=127.0.0.1:$REGISTRY_PORT"
      echo "RUST_LOG=${RUST_LOG:-info}"
      ;;
    ventures-sim)
      echo "VENTURES_SIM__LISTEN_ADDR=127.0.0.1:$VENTURES_PORT"
      echo "VENTURES_SIM__CLIENT=$DEV_VENTURES_CLIENT"
      echo "VENTURES_SIM__USERNAME=$DEV_VENTURES_USERNAME"
      echo "VENTURES_SIM__PASSWORD=$DEV_VENTURES_PASSWORD"
      echo "RUST_LOG=${RUST_LOG:-info}"
      ;;
    ventures-sync | projection-writer | api-gateway)
      echo "BRAIN__KAFKA_BROKERS=127.0.0.1:$BROKER_PORT"
      echo "BRAIN__SCHEMA_REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT"
      echo "BRAIN__DATABASE_URL=$db"
      echo "RUST_LOG=${RUST_LOG:-info}"
      ;;&
    ventures-sync)
      echo "VENTURES_SYNC__OPS_ADDR=127.0.0.1:$VENTURES_SYNC_OPS_PORT"
      echo "VENTURES_SYNC__VENTURES_BASE_URL=http://127.0.0.1:$VENTURES_PORT"
      echo "VENTURES_SYNC__VENTURES_CLIENT=$DEV_VENTURES_CLIENT"
      echo "VENTURES_SYNC__VENTURES_USERNAME=$DEV_VENTURES_USERNAME"
      echo "VENTURES_SYNC__VENTURES_PASSWORD=$DEV_VENTURES_PASSWORD"
      ;;
    projection-writer)
      echo "PROJECTION_WRITER__OPS_ADDR=127.0.0.1:$PROJECTION_WRITER_OPS_PORT"
      echo "PROJECTION_WRITER__FIRESTORE_PROJECT_ID=brain-dev"
      echo "FIRESTORE_EMULATOR_HOST=127.0.0.1:$EMULATOR_PORT"
      ;;
    api-gateway)
      echo "API_GATEWAY__LISTEN_ADDR=127.0.0.1:$GATEWAY_PORT"
      echo "API_GATEWAY__DATABASE_URL=postgres://brain_gateway_reader@127.0.0.1:$PG_PORT/brain"
      ;;
  esac
}

# Sets CMD to the command line that starts the component (postgres is handled separately).
component_cmd() {
  case "$1" in
    broker)
      # tansu also reads these from the environment; keep a developer's shell out of it.
      CMD=(env -u SCHEMA_REGISTRY -u OTEL_EXPORTER_OTLP_ENDPOINT -u CLUSTER_ID "$TANSU_LINK" broker
        --listener-url "tcp://127.0.0.1:$BROKER_PORT"
        --advertised-listener-url "tcp://127.0.0.1:$BROKER_PORT"
        --storage-engine memory://tansu/)
      ;;
    emulator) CMD=(node "$EMULATOR_DIR/launcher.mjs" --port "$EMULATOR_PORT") ;;
    *) CMD=("$(binary_of "$1")") ;;
  esac
}

ready_check() {
  local port
  port="$(port_of "$1")"
  case "$1" in
    postgres)
      if [[ -n "$PG_BIN" ]]; then
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 2
      else
        port_open "$port"
      fi
      ;;
    broker | emulator) port_open "$port" ;;
    registry) http_ok "http://127.0.0.1:$port/subjects" ;;
    ventures-sim) http_ok "http://127.0.0.1:$port/control/stats" ;;
    *) http_ok "http://127.0.0.1:$port/ready" ;;
  esac
}

# --- probes and processes -----------------------------------------------------------------------

now_ms() {
  local us="${EPOCHREALTIME//[!0-9]/}"
  echo $((us / 1000))
}

# Seconds since a now_ms timestamp, one decimal.
since() {
  local ms=$(($(now_ms) - $1))
  printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}

# shellcheck disable=SC2016 # $1 is expanded by the inner bash
port_open() { timeout 2 bash -c ': >"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

http_ok() {
  local code
  code="$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true)"
  [[ "$code" == 200 ]]
}

# Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat); empty if gone.
proc_starttime() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  stat="${stat##*) }"
  # shellcheck disable=SC2086 # split on purpose
  set -- $stat
  [[ "$1" == Z ]] || echo "${20}"
}

# Prints the pid of the component's process if this script started it and it still runs.
our_pid() {
  local file="$RUN_DIR/$1.pid" pid start
  [[ -f "$file" ]] || return 1
  read -r pid start <"$file" || return 1
  [[ -n "$pid" && -n "$start" && "$(proc_starttime "$pid")" == "$start" ]] || return 1
  echo "$pid"
}

clear_stale() {
  if [[ -f "$RUN_DIR/$1.pid" ]] && ! our_pid "$1" >/dev/null; then
    log "$1: removing stale pid file (process is gone)"
    rm -f "$RUN_DIR/$1.pid"
  fi
}

log_tail() {
  local file="$LOG_DIR/$1.log" from=$((${LOG_OFFSET[$1]:-0} + 1))
  [[ -f "$file" ]] || return 0
  log "--- last lines of ${file#"$REPO_ROOT"/} ---"
  tail -c "+$from" "$file" | tail -n 40 | sed 's/^/  | /' >&2
  log "---"
}

# launch COMPONENT [KEY=VALUE...] -- COMMAND...: starts it detached (own session), logs appended.
launch() {
  local c="$1" file="$LOG_DIR/$1.log" pid
  shift
  local envs=()
  while [[ "$1" != -- ]]; do envs+=("$1"); shift; done
  shift
  LOG_OFFSET[$c]="$(stat -c %s "$file" 2>/dev/null || echo 0)"
  printf '=== %s stack.sh: starting %s ===\n' "$(date -Is)" "$c" >>"$file"
  NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}" \
    setsid env "${envs[@]}" "$@" >>"$file" 2>&1 </dev/null 9>&- &
  pid=$!
  printf '%s %s\n' "$pid" "$(proc_starttime "$pid")" >"$RUN_DIR/$c.pid"
}

# Stops our process: SIGTERM (SIGINT = fast shutdown for postgres), then SIGKILL after 30 s.
stop_component() {
  local c="$1" pid signal=TERM deadline
  pid="$(our_pid "$c")" || return 1
  [[ "$c" == postgres ]] && signal=INT
  kill -s "$signal" "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 30))
  while our_pid "$c" >/dev/null; do
    if ((SECONDS >= deadline)); then
      log "$c: still running 30 s after SIG$signal; sending SIGKILL to $pid"
      kill -s KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  rm -f "$RUN_DIR/$c.pid"
  log "$c: stopped (pid $pid)"
}

wait_ready() {
  local c="$1" pid="$2" timeout deadline
  timeout="$(timeout_of "$c")"
  deadline=$(($(now_ms) + timeout * 1000))
  until ready_check "$c"; do
    if ! our_pid "$c" >/dev/null; then
      local status=0
      wait "$pid" 2>/dev/null || status=$?
      rm -f "$RUN_DIR/$c.pid"
      log "error: $c exited during start-up with status $status (see .dev/logs/$c.log)"
      log_tail "$c"
      exit 1
    fi
    if (($(now_ms) >= deadline)); then
      log "error: $c (pid $pid) did not become ready within $timeout s; stopping it"
      log_tail "$c"
      stop_component "$c" || true
      exit 1
    fi
    sleep 0.25
  done
}

require_port_free() {
  local c="$1" port
  port="$(port_of "$c")"
  if port_open "$port"; then
    log "error: port $port (for $c) is taken by a process stack.sh did not start:"
    ss -Hltnp "sport = :$port" >&2 2>/dev/null || true
    exit 1
  fi
}

# --- secrets ------------------------------------------------------------------------------------

load_secrets() {
  if [[ ! -f "$SECRETS_FILE" ]]; then
    rand() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
    mkdir -p "$STATE_DIR"
    (
      umask 077
      {
        echo "# Development-only credentials, generated by infra/dev/stack.sh. Never commit."
        echo "DEV_VENTURES_CLIENT=dev-$(rand 4)"
        echo "DEV_VENTURES_USERNAME=dev-user-$(rand 3)"
        echo "DEV_VENTURES_PASSWORD=$(rand 16)"
      } >"$SECRETS_FILE"
    )
    log "generated development credentials in ${SECRETS_FILE#"$REPO_ROOT"/}"
  fi
  chmod 600 "$SECRETS_FILE"
  local key value
  while IFS='=' read -r key value; do
    case "$key" in
      DEV_VENTURES_CLIENT | DEV_VENTURES_USERNAME | DEV_VENTURES_PASSWORD) printf -v "$key" '%s' "$value" ;;
    esac
  done <"$SECRETS_FILE"
  [[ -n "${DEV_VENTURES_CLIENT:-}" && -n "${DEV_VENTURES_USERNAME:-}" && -n "${DEV_VENTURES_PASSWORD:-}" ]] \
    || die "$SECRETS_FILE is incomplete; delete it to regenerate"
}

# --- postgres -----------------------------------------------------------------------------------

# Finds the newest installed PostgreSQL server binaries (Debian layout); installs them if absent.
find_pg_bin() {
  local dir
  dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n1 || true)"
  [[ -n "$dir" && -x "$dir/postgres" && -x "$dir/pg_isready" ]] && PG_BIN="$dir"
}

ensure_pg_bin() {
  if [[ -n "$PG_BIN" ]] || find_pg_bin; then return 0; fi
  log "postgres: no PostgreSQL installed; installing Debian's postgresql"
  # Keep the package from starting its own cluster (the port may be the one we want).
  local policy=/usr/sbin/policy-rc.d made_policy=0 rc=0
  if [[ ! -e "$policy" ]]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy"
    made_policy=1
  fi
  apt_ensure postgresql || rc=$?
  ((made_policy)) && as_root rm -f "$policy"
  ((rc == 0)) || die "installing postgresql failed"
  find_pg_bin || die "postgresql installed but no server binaries under /usr/lib/postgresql"
}

# Runs a command as the owner of the project-local cluster (the `postgres` user when root).
as_pg_owner() {
  if [[ $EUID -eq 0 ]]; then
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
  else
    "$@"
  fi
}

pg_psql() {
  "$PG_BIN/psql" -X -w -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 "$@"
}

ensure_brain_db() {
  local out
  out="$(pg_psql -d postgres -tAc 'SELECT 1' 2>&1)" \
    || die "PostgreSQL on 127.0.0.1:$PG_PORT does not let user postgres in without a password: $out
  (configure trust auth for 127.0.0.1 there, or point PG_PORT at a free port for a project-local cluster)"
  if [[ "$(pg_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'brain'")" != 1 ]]; then
    pg_psql -d postgres -c 'CREATE DATABASE brain' >/dev/null
    log "postgres: created database brain"
  fi
}

init_local_cluster() {
  if [[ -f "$PG_DATA/PG_VERSION" ]]; then
    local have want
    have="$(cat "$PG_DATA/PG_VERSION")" want="$(basename "$(dirname "$PG_BIN")")"
    [[ "$have" == "$want" ]] || die "$PG_DATA holds a PostgreSQL $have cluster but the server is $want; remove it"
    return 0
  fi
  log "postgres: initialising a project-local cluster in ${PG_DATA#"$REPO_ROOT"/} (trust auth)"
  mkdir -p "$PG_DATA"
  chmod 700 "$PG_DATA"
  # initdb refuses to run as root: the data dir belongs to the postgres user.
  [[ $EUID -eq 0 ]] && chown postgres:postgres "$PG_DATA"
  as_pg_owner test -w "$PG_DATA" \
    || die "the postgres user cannot write $PG_DATA (a parent directory is not traversable?); set PG_DATA_DIR"
  LOG_OFFSET[postgres]="$(stat -c %s "$LOG_DIR/postgres.log" 2>/dev/null || echo 0)"
  as_pg_owner "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust --encoding=UTF8 \
    --locale=C.UTF-8 >>"$LOG_DIR/postgres.log" 2>&1 \
    || { log_tail postgres; die "initdb failed"; }
}

up_postgres() {
  local pid
  ensure_pg_bin
  if pid="$(our_pid postgres)"; then
    wait_ready postgres "$pid"
    log "postgres: already running (pid $pid, project-local cluster)"
    ensure_brain_db
    return 0
  fi
  clear_stale postgres
  if ready_check postgres || port_open "$PG_PORT"; then
    log "postgres: using the server already on 127.0.0.1:$PG_PORT (not started by stack.sh, never stopped by it)"
    ensure_brain_db
    return 0
  fi
  init_local_cluster
  local cmd=("$PG_BIN/postgres" -D "$PG_DATA" -c listen_addresses=127.0.0.1 -c "port=$PG_PORT"
    -c unix_socket_directories=)
  if [[ $EUID -eq 0 ]]; then
    cmd=(setpriv --reuid=postgres --regid=postgres --init-groups -- "${cmd[@]}")
  fi
  launch postgres -- "${cmd[@]}"
  pid="$(our_pid postgres)" || true
  wait_ready postgres "$pid"
  log "postgres: ready (pid $pid, project-local cluster, data in ${PG_DATA#"$REPO_ROOT"/})"
  ensure_brain_db
}

# --- the other components -----------------------------------------------------------------------

preflight() {
  local c="$1" dep bin
  case "$c" in
    broker) [[ -x "$TANSU_LINK" ]] || die "broker: $TANSU_LINK missing; run infra/dev/setup.sh (make setup)" ;;
    emulator) [[ -d "$EMULATOR_DIR/node_modules/@firestore-emulator/server" ]] \
      || die "emulator: node_modules missing; run infra/dev/setup.sh (make setup)" ;;
    *)
      bin="$(binary_of "$c")"
      [[ -x "$bin" ]] || die "$c: ${bin#"$REPO_ROOT"/} not found; build it first (make build)"
      ;;
  esac
  for dep in $(deps_of "$c"); do
    ready_check "$dep" || die "$c needs $dep, which is not answering; start it first (stack.sh up $dep)"
  done
}

up_component() {
  local c="$1" pid started envs=()
  started="$(now_ms)"
  if pid="$(our_pid "$c")"; then
    if ready_check "$c"; then
      log "$c: already running (pid $pid)"
      return 0
    fi
    log "$c: running (pid $pid) but not ready yet; waiting"
    wait_ready "$c" "$pid"
    log "$c: ready (pid $pid)"
    return 0
  fi
  clear_stale "$c"
  preflight "$c"
  require_port_free "$c"
  mapfile -t envs < <(component_env "$c")
  component_cmd "$c"
  launch "$c" "${envs[@]}" -- "${CMD[@]}"
  pid="$(our_pid "$c")" || true
  wait_ready "$c" "${pid:-?}"
  log "$c: ready in $(since "$started") s (pid $pid, $(url_of "$c"))"
}

# --- subcommands --------------------------------------------------------------------------------

# Expands "services", validates names, and returns them in start order.
select_components() {
  local wanted=() c w
  (($# == 0)) && set -- "${ALL_COMPONENTS[@]}"
  for w in "$@"; do
    if [[ "$w" == services ]]; then
      wanted+=("${SERVICES[@]}")
    elif [[ " ${ALL_COMPONENTS[*]} " == *" $w "* ]]; then
      wanted+=("$w")
    else
      die "unknown component '$w' (known: ${ALL_COMPONENTS[*]} services)"
    fi
  done
  for c in "${ALL_COMPONENTS[@]}"; do
    [[ " ${wanted[*]} " == *" $c "* ]] && echo "$c"
  done
  return 0
}

cmd_up() {
  local components c
  mapfile -t components < <(select_components "$@")
  ((${#components[@]})) || exit 1
  load_secrets
  for c in "${components[@]}"; do
    if [[ "$c" == postgres ]]; then up_postgres; else up_component "$c"; fi
  done
  log "stack: up (${components[*]}); see: infra/dev/stack.sh status"
}

cmd_down() {
  local components c i
  mapfile -t components < <(select_components "$@")
  ((${#components[@]})) || exit 1
  for ((i = ${#components[@]} - 1; i >= 0; i--)); do
    c="${components[i]}"
    if stop_component "$c"; then
      continue
    fi
    clear_stale "$c"
    if [[ "$c" == postgres ]] && port_open "$PG_PORT"; then
      log "postgres: the server on 127.0.0.1:$PG_PORT was not started by stack.sh; left running"
    fi
  done
  log "stack: down (${components[*]})"
}

cmd_status() {
  local c pid state port
  find_pg_bin || true
  printf '%-18s %-8s %-6s %-10s %s\n' COMPONENT PID PORT STATE URL
  for c in "${ALL_COMPONENTS[@]}"; do
    port="$(port_of "$c")" pid=-
    if pid="$(our_pid "$c")"; then
      if ready_check "$c"; then state=running; else state=not-ready; fi
    else
      pid=-
      if [[ -f "$RUN_DIR/$c.pid" ]]; then
        state=crashed
      elif port_open "$port"; then
        state=external
      else
        state=stopped
      fi
    fi
    printf '%-18s %-8s %-6s %-10s %s\n' "$c" "$pid" "$port" "$state" "$(url_of "$c")"
  done
  echo
  echo "broker: memory:// storage, all topics and offsets are lost when it restarts."
  echo "emulator: in-memory, all documents are lost when it restarts."
  echo "external = something stack.sh did not start answers on that port (left alone by down);"
  echo "crashed = started by stack.sh but gone (see stack.sh logs <component>)."
  echo "logs: ${LOG_DIR#"$REPO_ROOT"/}/<component>.log"
}

cmd_env() {
  local c line
  declare -A seen=()
  load_secrets
  for line in "PG_PORT=$PG_PORT" "BROKER_PORT=$BROKER_PORT" "REGISTRY_PORT=$REGISTRY_PORT" \
    "EMULATOR_PORT=$EMULATOR_PORT" "VENTURES_PORT=$VENTURES_PORT" "GATEWAY_PORT=$GATEWAY_PORT" \
    "VENTURES_SYNC_OPS_PORT=$VENTURES_SYNC_OPS_PORT" \
    "PROJECTION_WRITER_OPS_PORT=$PROJECTION_WRITER_OPS_PORT"; do
    printf 'export %s=%q\n' "${line%%=*}" "${line#*=}"
  done
  for c in "${ALL_COMPONENTS[@]}"; do
    while IFS= read -r line; do
      [[ -n "$line" && -z "${seen[$line]:-}" ]] || continue
      seen[$line]=1
      printf 'export %s=%q\n' "${line%%=*}" "${line#*=}"
    done < <(component_env "$c")
  done
}

cmd_logs() {
  local follow=0 components c files=()
  if [[ "${1:-}" == -f ]]; then follow=1; shift; fi
  mapfile -t components < <(select_components "$@")
  ((${#components[@]})) || exit 1
  for c in "${components[@]}"; do
    [[ -f "$LOG_DIR/$c.log" ]] && files+=("$LOG_DIR/$c.log")
  done
  ((${#files[@]})) || { log "no logs yet in ${LOG_DIR#"$REPO_ROOT"/}"; return 0; }
  if ((follow)); then
    exec tail -n 20 -F "${files[@]}"
  fi
  for c in "${files[@]}"; do
    echo "==> ${c#"$REPO_ROOT"/} <=="
    tail -n 30 "$c"
    echo
  done
}

main() {
  local sub="${1:-}"
  (($#)) && shift
  load_ports
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  cd "$REPO_ROOT"
  case "$sub" in
    up | down)
      # One up/down at a time.
      exec 9>"$RUN_DIR/stack.lock"
      flock -n 9 || { log "waiting for another stack.sh up/down to finish"; flock 9; }
      "cmd_$sub" "$@"
      ;;
    status) cmd_status ;;
    env) cmd_env ;;
    logs) cmd_logs "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
