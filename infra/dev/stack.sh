#!/usr/bin/env bash
# The local development stack, without Docker.
#
#   stack.sh up [component...]   start (default: all) in order; a no-op for what already answers
#   stack.sh down [component...] stop what this script started (default: all), in reverse order
#   stack.sh status              table of component, pid, port, state, URL
#   stack.sh env                 `export` lines: eval "$(infra/dev/stack.sh env)"
#   stack.sh logs [-f] [component...]
#
# Components, in start order: postgres broker registry emulator ventures-sim qbo-sim storage-sim sharefile-sim graph-sim oidc services
# (services = ventures-sync projection-writer firestore-change-listener dlq-replayer qbo-mirror sharefile-sync graph-calendar api-gateway; dlq-replayer runs
# `dlq-replayer serve`, the dead-letter API behind the gateway's /api/v1/admin and /ops; oidc = the dev OIDC issuer the gateway
# trusts: `target/debug/dev-oidc mint --role staff --tenant default` prints a token; qbo-sim = the QuickBooks Online
# simulator, whose webhooks go to the gateway's /api/v1/webhooks/qbo; storage-sim = Cloud Storage, where the apps upload
# (bucket brain-uploads); sharefile-sim = ShareFile, with /Clients; graph-sim = Microsoft Graph, seeded with the staff
# member dev-advisor, whose calendar graph-calendar offers). Ports: infra/dev/ports.env, each
# overridable from the environment. State lives in .dev/: run/<component>.pid ("pid starttime",
# so a recycled pid is never signalled), logs/<component>.log, secrets.env (mode 600).
# QuickBooks: once qbo-sim (and qbo-mirror) answer, `up` seeds an empty simulator with QBO_DEV_REALMS
# (3) companies of QBO_DEV_DOCUMENTS (200) bills and invoices, always the same ones (seed and asOf
# kept in .dev/qbo-seed.env; delete it for new ones), and connects each to qbo-mirror for tenant
# `default`, advisor `dev-staff` (the subject of `dev-oidc mint --role staff`); a realm the mirror
# already has active is left alone, so a second `up` adds nothing.
# A PostgreSQL already answering on PG_PORT is used as it is and never stopped; otherwise a
# project-local cluster (trust auth, data in .cache/pg/data) is started and owned by this script.
# The broker is Apache Kafka: cluster `dev` of infra/kafka/kafka.sh, KAFKA_NODES nodes (default 1,
# or what the cluster was created with) from BROKER_PORT on; its data survives `down`/`up` unless
# KAFKA_FRESH=1. BRAIN_BROKER=tansu runs the old tansu broker (memory storage) instead.
set -euo pipefail
# shellcheck source=infra/dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_COMPONENTS=(postgres broker registry emulator ventures-sim qbo-sim storage-sim sharefile-sim graph-sim oidc ventures-sync projection-writer firestore-change-listener dlq-replayer qbo-mirror sharefile-sync graph-calendar api-gateway)
SERVICES=(ventures-sync projection-writer firestore-change-listener dlq-replayer qbo-mirror sharefile-sync graph-calendar api-gateway)
BIN_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug"
PG_DATA="${PG_DATA_DIR:-$CACHE_DIR/pg/data}"
PG_BIN=""
KAFKA_SH="$REPO_ROOT/infra/kafka/kafka.sh"
KAFKA_CLUSTER=dev
declare -A LOG_OFFSET=()
CMD=()

usage() { sed -n '2,8s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

# --- component table ----------------------------------------------------------------------------

# kafka (default) or tansu.
broker_kind() {
  case "${BRAIN_BROKER:-kafka}" in
    kafka | "") echo kafka ;;
    tansu) echo tansu ;;
    *) die "BRAIN_BROKER='$BRAIN_BROKER': use kafka (the default) or tansu" ;;
  esac
}

# Number of nodes of the dev Kafka cluster: KAFKA_NODES, else what it was created with, else 1.
kafka_nodes() {
  local stored
  if [[ -n "${KAFKA_NODES:-}" ]]; then
    [[ "$KAFKA_NODES" =~ ^[1-9]$ ]] || die "KAFKA_NODES='$KAFKA_NODES': use 1-9"
    echo "$KAFKA_NODES"
    return 0
  fi
  stored="$(sed -n 's/^NODES=//p' "$STATE_DIR/kafka/$KAFKA_CLUSTER/cluster.env" 2>/dev/null || true)"
  echo "${stored:-1}"
}

# The broker's bootstrap list as the services get it (BRAIN__KAFKA_BROKERS).
broker_bootstrap() {
  if [[ "$(broker_kind)" == tansu ]]; then
    echo "127.0.0.1:$BROKER_PORT"
    return 0
  fi
  local k n list=""
  n="$(kafka_nodes)"
  for ((k = 1; k <= n; k++)); do list+="${list:+,}127.0.0.1:$((BROKER_PORT + 2 * (k - 1)))"; done
  echo "$list"
}

port_of() {
  case "$1" in
    postgres) echo "$PG_PORT" ;;
    broker) echo "$BROKER_PORT" ;;
    registry) echo "$REGISTRY_PORT" ;;
    emulator) echo "$EMULATOR_PORT" ;;
    ventures-sim) echo "$VENTURES_PORT" ;;
    qbo-sim) echo "$QBO_PORT" ;;
    storage-sim) echo "$STORAGE_PORT" ;;
    sharefile-sim) echo "$SHAREFILE_PORT" ;;
    graph-sim) echo "$GRAPH_PORT" ;;
    oidc) echo "$OIDC_PORT" ;;
    ventures-sync) echo "$VENTURES_SYNC_OPS_PORT" ;;
    projection-writer) echo "$PROJECTION_WRITER_OPS_PORT" ;;
    firestore-change-listener) echo "$CHANGE_LISTENER_OPS_PORT" ;;
    dlq-replayer) echo "$DLQ_REPLAYER_PORT" ;;
    qbo-mirror) echo "$QBO_MIRROR_OPS_PORT" ;;
    sharefile-sync) echo "$SHAREFILE_SYNC_OPS_PORT" ;;
    graph-calendar) echo "$GRAPH_CALENDAR_OPS_PORT" ;;
    api-gateway) echo "$GATEWAY_PORT" ;;
  esac
}

url_of() {
  local port
  port="$(port_of "$1")"
  case "$1" in
    postgres) echo "postgres://postgres@127.0.0.1:$port/brain" ;;
    broker)
      if [[ "$(broker_kind)" == tansu ]]; then echo "tcp://127.0.0.1:$port (tansu)"; else echo "$(broker_bootstrap) (Kafka)"; fi
      ;;
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
    broker | emulator | ventures-sim | qbo-sim | storage-sim | sharefile-sim | graph-sim | oidc) echo 30 ;;
    *) echo 120 ;;
  esac
}

# Components that must answer before this one starts.
deps_of() {
  case "$1" in
    registry) echo postgres ;;
    ventures-sync) echo postgres broker registry ventures-sim ;;
    projection-writer) echo postgres broker registry emulator ;;
    firestore-change-listener) echo postgres broker registry emulator ;;
    dlq-replayer) echo postgres broker registry ;;
    qbo-mirror) echo postgres broker registry qbo-sim ;;
    sharefile-sync) echo postgres broker registry storage-sim sharefile-sim ;;
    graph-calendar) echo postgres broker registry graph-sim ;;
    api-gateway) echo postgres broker registry oidc ;;
  esac
}

binary_of() {
  case "$1" in
    registry) echo "$BIN_DIR/schema-registry" ;;
    ventures-sim) echo "$BIN_DIR/ventures-simulator" ;;
    qbo-sim) echo "$BIN_DIR/qbo-simulator" ;;
    storage-sim) echo "$BIN_DIR/storage-simulator" ;;
    sharefile-sim) echo "$BIN_DIR/sharefile-simulator" ;;
    graph-sim) echo "$BIN_DIR/graph-simulator" ;;
    oidc) echo "$BIN_DIR/dev-oidc" ;;
    ventures-sync | projection-writer | firestore-change-listener | dlq-replayer | qbo-mirror | sharefile-sync | graph-calendar | api-gateway) echo "$BIN_DIR/$1" ;;
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
    qbo-sim)
      # Webhooks go to the gateway (retried, then `failed` while it is down; qbo-mirror's
      # scheduled sync catches up with whatever a lost webhook announced).
      echo "QBO_SIM__LISTEN_ADDR=127.0.0.1:$QBO_PORT"
      echo "QBO_SIM__CLIENT_ID=$DEV_QBO_CLIENT_ID"
      echo "QBO_SIM__CLIENT_SECRET=$DEV_QBO_CLIENT_SECRET"
      echo "QBO_SIM__WEBHOOK_VERIFIER_TOKEN=$DEV_QBO_WEBHOOK_VERIFIER"
      echo "QBO_SIM__WEBHOOK_URL=http://127.0.0.1:$GATEWAY_PORT/api/v1/webhooks/qbo"
      echo "RUST_LOG=${RUST_LOG:-info}"
      ;;
    storage-sim)
      echo "STORAGE_SIM__LISTEN_ADDR=127.0.0.1:$STORAGE_PORT"
      echo "STORAGE_SIM__BUCKETS=brain-uploads"
      echo "RUST_LOG=${RUST_LOG:-info}"
      ;;
    sharefile-sim)
      echo "SHAREFILE_SIM__LISTEN_ADDR=127.0.0.1:$SHAREFILE_PORT"
      echo "SHAREFILE_SIM__CLIENT_ID=$DEV_SHAREFILE_CLIENT_ID"
      echo "SHAREFILE_SIM__CLIENT_SECRET=$DEV_SHAREFILE_CLIENT_SECRET"
      echo "SHAREFILE_SIM__USERNAME=$DEV_SHAREFILE_USERNAME"
      echo "SHAREFILE_SIM__PASSWORD=$DEV_SHAREFILE_PASSWORD"
      echo "SHAREFILE_SIM__ROOT_FOLDERS=/Clients"
      echo "RUST_LOG=${RUST_LOG:-info}"
      ;;
    graph-sim)
      echo "GRAPH_SIM__LISTEN_ADDR=127.0.0.1:$GRAPH_PORT"
      echo "GRAPH_SIM__TENANT_ID=$DEV_GRAPH_TENANT"
      echo "GRAPH_SIM__CLIENT_ID=$DEV_GRAPH_CLIENT_ID"
      echo "GRAPH_SIM__CLIENT_SECRET=$DEV_GRAPH_CLIENT_SECRET"
      echo "RUST_LOG=${RUST_LOG:-info}"
      ;;
    oidc)
      # Keys are generated in memory at start-up: a restart invalidates every token it minted.
      echo "DEV_OIDC__LISTEN_ADDR=127.0.0.1:$OIDC_PORT"
      echo "DEV_OIDC__AUDIENCE=brain"
      echo "RUST_LOG=${RUST_LOG:-info}"
      ;;
    ventures-sync | projection-writer | firestore-change-listener | dlq-replayer | qbo-mirror | sharefile-sync | graph-calendar | api-gateway)
      local nodes=1
      [[ "$(broker_kind)" == kafka ]] && nodes="$(kafka_nodes)"
      echo "BRAIN__KAFKA_BROKERS=$(broker_bootstrap)"
      echo "BRAIN__TOPIC_REPLICATION=$((nodes < 3 ? nodes : 3))"
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
    firestore-change-listener)
      echo "FIRESTORE_CHANGE_LISTENER__OPS_ADDR=127.0.0.1:$CHANGE_LISTENER_OPS_PORT"
      echo "FIRESTORE_CHANGE_LISTENER__FIRESTORE_PROJECT_ID=brain-dev"
      echo "FIRESTORE_EMULATOR_HOST=127.0.0.1:$EMULATOR_PORT"
      ;;
    projection-writer)
      echo "PROJECTION_WRITER__OPS_ADDR=127.0.0.1:$PROJECTION_WRITER_OPS_PORT"
      echo "PROJECTION_WRITER__FIRESTORE_PROJECT_ID=brain-dev"
      echo "FIRESTORE_EMULATOR_HOST=127.0.0.1:$EMULATOR_PORT"
      ;;
    dlq-replayer)
      echo "DLQ_REPLAYER__HTTP_ADDR=127.0.0.1:$DLQ_REPLAYER_PORT"
      ;;
    qbo-mirror)
      echo "QBO_MIRROR__OPS_ADDR=127.0.0.1:$QBO_MIRROR_OPS_PORT"
      echo "QBO_MIRROR__QBO_API_BASE=http://127.0.0.1:$QBO_PORT"
      echo "QBO_MIRROR__QBO_TOKEN_URL=http://127.0.0.1:$QBO_PORT/oauth2/v1/tokens/bearer"
      echo "QBO_MIRROR__QBO_CLIENT_ID=$DEV_QBO_CLIENT_ID"
      echo "QBO_MIRROR__QBO_CLIENT_SECRET=$DEV_QBO_CLIENT_SECRET"
      echo "QBO_MIRROR__TOKEN_KEY=$DEV_QBO_TOKEN_KEY"
      echo "QBO_MIRROR__SYNC_INTERVAL_MS=${QBO_MIRROR_SYNC_INTERVAL_MS:-5000}"
      ;;
    sharefile-sync)
      echo "SHAREFILE_SYNC__OPS_ADDR=127.0.0.1:$SHAREFILE_SYNC_OPS_PORT"
      echo "SHAREFILE_SYNC__SHAREFILE_API_BASE=http://127.0.0.1:$SHAREFILE_PORT/sf/v3"
      echo "SHAREFILE_SYNC__SHAREFILE_TOKEN_URL=http://127.0.0.1:$SHAREFILE_PORT/oauth/token"
      echo "SHAREFILE_SYNC__SHAREFILE_CLIENT_ID=$DEV_SHAREFILE_CLIENT_ID"
      echo "SHAREFILE_SYNC__SHAREFILE_CLIENT_SECRET=$DEV_SHAREFILE_CLIENT_SECRET"
      echo "SHAREFILE_SYNC__SHAREFILE_USERNAME=$DEV_SHAREFILE_USERNAME"
      echo "SHAREFILE_SYNC__SHAREFILE_PASSWORD=$DEV_SHAREFILE_PASSWORD"
      echo "SHAREFILE_SYNC__STORAGE_BASE_URL=http://127.0.0.1:$STORAGE_PORT"
      ;;
    graph-calendar)
      echo "GRAPH_CALENDAR__OPS_ADDR=127.0.0.1:$GRAPH_CALENDAR_OPS_PORT"
      echo "GRAPH_CALENDAR__GRAPH_API_BASE=http://127.0.0.1:$GRAPH_PORT/v1.0"
      echo "GRAPH_CALENDAR__GRAPH_TOKEN_URL=http://127.0.0.1:$GRAPH_PORT/$DEV_GRAPH_TENANT/oauth2/v2.0/token"
      echo "GRAPH_CALENDAR__GRAPH_CLIENT_ID=$DEV_GRAPH_CLIENT_ID"
      echo "GRAPH_CALENDAR__GRAPH_CLIENT_SECRET=$DEV_GRAPH_CLIENT_SECRET"
      echo "GRAPH_CALENDAR__STAFF=dev-advisor"
      echo "GRAPH_CALENDAR__NOTIFICATION_URL=http://127.0.0.1:$GATEWAY_PORT/api/v1/webhooks/graph"
      echo "GRAPH_CALENDAR__CLIENT_STATE=$DEV_GRAPH_CLIENT_STATE"
      echo "GRAPH_CALENDAR__REFRESH_INTERVAL_MS=${GRAPH_REFRESH_INTERVAL_MS:-60000}"
      echo "GRAPH_CALENDAR__TEAMS_TEAM_ID=dev-team"
      echo "GRAPH_CALENDAR__TEAMS_CHANNEL_ID=19:loans@thread.tacv2"
      ;;
    api-gateway)
      echo "API_GATEWAY__LISTEN_ADDR=127.0.0.1:$GATEWAY_PORT"
      echo "API_GATEWAY__DLQ_REPLAYER_URL=http://127.0.0.1:$DLQ_REPLAYER_PORT"
      echo "API_GATEWAY__DATABASE_URL=postgres://brain_gateway_reader@127.0.0.1:$PG_PORT/brain"
      echo "API_GATEWAY__OIDC_ISSUERS=[{\"name\":\"dev\",\"issuer\":\"http://127.0.0.1:$OIDC_PORT\",\"audience\":\"brain\"}]"
      echo "API_GATEWAY__QBO_WEBHOOK_VERIFIER=$DEV_QBO_WEBHOOK_VERIFIER"
      echo "API_GATEWAY__STORAGE_BASE_URL=http://127.0.0.1:$STORAGE_PORT"
      echo "API_GATEWAY__GRAPH_CLIENT_STATE=$DEV_GRAPH_CLIENT_STATE"
      ;;
  esac
}

# Sets CMD to the command line that starts the component (postgres is handled separately).
component_cmd() {
  case "$1" in
    broker)
      # (tansu only; Kafka is started by kafka.sh.) tansu also reads these from the environment;
      # keep a developer's shell out of it.
      CMD=(env -u SCHEMA_REGISTRY -u OTEL_EXPORTER_OTLP_ENDPOINT -u CLUSTER_ID "$TANSU_LINK" broker
        --listener-url "tcp://127.0.0.1:$BROKER_PORT"
        --advertised-listener-url "tcp://127.0.0.1:$BROKER_PORT"
        --storage-engine memory://tansu/)
      ;;
    emulator) CMD=(node "$EMULATOR_DIR/launcher.mjs" --port "$EMULATOR_PORT") ;;
    dlq-replayer) CMD=("$(binary_of "$1")" serve) ;;
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
    broker)
      if [[ "$(broker_kind)" == tansu ]]; then
        port_open "$port"
      else
        kafka_any_open
      fi
      ;;
    emulator) port_open "$port" ;;
    registry) http_ok "http://127.0.0.1:$port/subjects" ;;
    ventures-sim) http_ok "http://127.0.0.1:$port/control/stats" ;;
    qbo-sim | storage-sim | sharefile-sim | graph-sim) http_ok "http://127.0.0.1:$port/control/health" ;;
    oidc) http_ok "http://127.0.0.1:$port/.well-known/openid-configuration" ;;
    *) http_ok "http://127.0.0.1:$port/ready" ;;
  esac
}

# --- probes and processes -----------------------------------------------------------------------

# True when a node of the dev Kafka cluster accepts connections.
kafka_any_open() {
  local hostport list
  IFS=, read -r -a list <<<"$(broker_bootstrap)"
  for hostport in "${list[@]}"; do
    port_open "${hostport##*:}" && return 0
  done
  return 1
}

http_ok() {
  local code
  code="$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true)"
  [[ "$code" == 200 ]]
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
  write_pid "$c" "$pid"
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

# Development-only credentials: generated once into .dev/secrets.env (mode 600, gitignored), kept
# across down/up (qbo-mirror's stored refresh tokens are sealed with DEV_QBO_TOKEN_KEY), never
# committed. One missing from an older file is generated and added to it.
SECRET_NAMES=(DEV_VENTURES_CLIENT DEV_VENTURES_USERNAME DEV_VENTURES_PASSWORD
  DEV_QBO_CLIENT_ID DEV_QBO_CLIENT_SECRET DEV_QBO_WEBHOOK_VERIFIER DEV_QBO_TOKEN_KEY
  DEV_SHAREFILE_CLIENT_ID DEV_SHAREFILE_CLIENT_SECRET DEV_SHAREFILE_USERNAME DEV_SHAREFILE_PASSWORD
  DEV_GRAPH_TENANT DEV_GRAPH_CLIENT_ID DEV_GRAPH_CLIENT_SECRET DEV_GRAPH_CLIENT_STATE)

new_secret() {
  rand() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
  case "$1" in
    DEV_VENTURES_CLIENT) echo "dev-$(rand 4)" ;;
    DEV_VENTURES_USERNAME) echo "dev-user-$(rand 3)" ;;
    DEV_VENTURES_PASSWORD) rand 16 ;;
    # The QuickBooks app's OAuth client (qbo-sim accepts it, qbo-mirror presents it) and the
    # webhook verifier token (qbo-sim signs with it, the gateway checks).
    DEV_QBO_CLIENT_ID) echo "dev-qbo-$(rand 8)" ;;
    DEV_QBO_CLIENT_SECRET) rand 20 ;;
    DEV_QBO_WEBHOOK_VERIFIER) rand 16 ;;
    # qbo-mirror's TOKEN_KEY: 32 random bytes, base64.
    DEV_QBO_TOKEN_KEY) head -c 32 /dev/urandom | base64 -w0 ;;
    # The ShareFile API client and service account (sharefile-sim accepts them, sharefile-sync presents them).
    DEV_SHAREFILE_CLIENT_ID) echo "dev-sf-$(rand 8)" ;;
    DEV_SHAREFILE_CLIENT_SECRET | DEV_SHAREFILE_PASSWORD) rand 16 ;;
    DEV_SHAREFILE_USERNAME) echo "brain-dev-$(rand 3)@example.com" ;;
    # The Graph app registration (graph-sim accepts it, graph-calendar presents it) and the
    # subscriptions' clientState (graph-calendar sets it, the gateway checks it).
    DEV_GRAPH_TENANT) echo "dev-tenant-$(rand 4)" ;;
    DEV_GRAPH_CLIENT_ID) echo "dev-graph-$(rand 8)" ;;
    DEV_GRAPH_CLIENT_SECRET | DEV_GRAPH_CLIENT_STATE) rand 16 ;;
    *) die "no generator for $1" ;;
  esac
}

load_secrets() {
  local name line added=()
  local -A have=()
  mkdir -p "$STATE_DIR" "$RUN_DIR"
  exec 8>"$RUN_DIR/secrets.lock"
  flock 8
  if [[ ! -f "$SECRETS_FILE" ]]; then
    (umask 077 && echo "# Development-only credentials, generated by infra/dev/stack.sh. Never commit." >"$SECRETS_FILE")
  fi
  chmod 600 "$SECRETS_FILE"
  while IFS= read -r line || [[ -n "$line" ]]; do
    name="${line%%=*}"
    [[ "$line" == *=* && " ${SECRET_NAMES[*]} " == *" $name "* ]] || continue
    printf -v "$name" '%s' "${line#*=}"
    have[$name]=1
  done <"$SECRETS_FILE"
  for name in "${SECRET_NAMES[@]}"; do
    [[ -n "${have[$name]:-}" ]] && continue
    printf -v "$name" '%s' "$(new_secret "$name")"
    printf '%s=%s\n' "$name" "${!name}" >>"$SECRETS_FILE"
    added+=("$name")
  done
  exec 8>&-
  ((${#added[@]} == 0)) || log "generated development credentials in ${SECRETS_FILE#"$REPO_ROOT"/}: ${added[*]}"
  for name in "${SECRET_NAMES[@]}"; do
    [[ -n "${!name}" ]] || die "$SECRETS_FILE: $name is empty; delete that line (or the file) to regenerate it"
  done
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
  local before conf
  before="$(find /etc/postgresql -mindepth 2 -maxdepth 2 -type d 2>/dev/null || true)"
  apt_ensure postgresql || rc=$?
  ((made_policy)) && as_root rm -f "$policy"
  ((rc == 0)) || die "installing postgresql failed"
  # The package also creates a "main" cluster (port 5432, password auth) that the policy above
  # kept from starting but a reboot would start: make it manual so it never takes PG_PORT.
  for conf in /etc/postgresql/*/*/start.conf; do
    [[ -f "$conf" ]] || continue
    grep -qxF "$(dirname "$conf")" <<<"$before" && continue
    echo manual | as_root tee "$conf" >/dev/null
    log "postgres: set the package's own cluster $(dirname "$conf") to start manually (never on boot)"
  done
  find_pg_bin || die "the postgresql package is installed but there are no server binaries under /usr/lib/postgresql (apt-get install --reinstall postgresql-15?)"
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

# As root the cluster runs as the postgres user, which must be able to reach $PG_DATA. Directories
# inside the repository on the way (.cache, .cache/pg: ours) get search permission for others
# (o+x: no listing); for one outside them (the checkout itself, a home directory) it says what to do.
pg_data_reachable() {
  [[ $EUID -eq 0 ]] || return 0
  local target dir="" part parts
  mkdir -p "$PG_DATA"
  target="$(realpath "$PG_DATA")"
  IFS=/ read -r -a parts <<<"${target#/}"
  unset 'parts[${#parts[@]}-1]' # the data directory itself belongs to postgres (mode 700)
  for part in "${parts[@]}"; do
    dir+="/$part"
    as_pg_owner test -x "$dir" && continue
    if [[ "$dir" == "$REPO_ROOT"/* ]]; then
      chmod o+x "$dir"
      log "postgres: gave others search permission (o+x) on ${dir#"$REPO_ROOT"/} so that the postgres user reaches the data"
    else
      die "the postgres user cannot reach $PG_DATA: it may not enter $dir; chmod o+x $dir, or set PG_DATA_DIR to a directory it can reach"
    fi
  done
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
  pg_data_reachable
  init_local_cluster
  # 300 connections: system tests run two at a time, each with up to eight services and their
  # pools (the default 100 can run out when a test runs the whole system).
  local cmd=("$PG_BIN/postgres" -D "$PG_DATA" -c listen_addresses=127.0.0.1 -c "port=$PG_PORT"
    -c unix_socket_directories= -c max_connections=300)
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
    broker)
      [[ -x "$TANSU_LINK" ]] || die "broker: $TANSU_LINK missing; run infra/dev/setup.sh (make setup)"
      if kafka_running; then
        die "broker: the Apache Kafka dev cluster is running; stop it first: infra/dev/stack.sh down broker"
      fi
      ;;
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

# --- QuickBooks: the dev companies (qbo-sim) and their connection to qbo-mirror -------------------

QBO_SEED_FILE="$STATE_DIR/qbo-seed.env"
QBO_DEV_TENANT=default
# The `sub` of `dev-oidc mint --role staff` (dev-<role>, infra/dev-oidc/src/main.rs): the digest of
# a dev staff token lists these companies.
QBO_DEV_ADVISOR=dev-staff

# curl to a component of ours; fails on a non-2xx answer and prints its body.
local_curl() { curl --noproxy '*' -sS --fail-with-body --max-time 60 "$@"; }

# psql on the brain database, unaligned tuples only.
brain_sql() {
  [[ -n "$PG_BIN" ]] || find_pg_bin || die "no PostgreSQL client binaries under /usr/lib/postgresql (make setup)"
  pg_psql -d brain -tA -F $'\t' -c "$1"
}

# KEY=VALUE lines of .dev/qbo-seed.env (not secret): QBO_SEED, QBO_AS_OF, QBO_CONNECTED_KEY.
qbo_seed_get() {
  [[ -f "$QBO_SEED_FILE" ]] || return 0
  sed -n "s/^$1=//p" "$QBO_SEED_FILE" | tail -n1
}
qbo_seed_set() {
  local tmp="$QBO_SEED_FILE.tmp"
  { grep -v "^$1=" "$QBO_SEED_FILE" 2>/dev/null || true; echo "$1=$2"; } >"$tmp"
  mv "$tmp" "$QBO_SEED_FILE"
}

# qbo_connect REALM COMPANY REFRESH_TOKEN: `qbo-mirror connect` (an upsert: never a second row).
qbo_connect() {
  local envs=() out
  mapfile -t envs < <(component_env qbo-mirror)
  # The refresh token goes through the environment, never the command line.
  if ! out="$(env "${envs[@]}" RUST_LOG=warn QBO_REFRESH_TOKEN="$3" NO_PROXY='127.0.0.1,localhost' \
    "$(binary_of qbo-mirror)" connect --realm "$1" --tenant "$QBO_DEV_TENANT" \
    --advisor "$QBO_DEV_ADVISOR" --company "$2" 2>&1)"; then
    log "$out"
    die "qbo-mirror connect --realm $1 failed"
  fi
}

# The realm's current refresh token in qbo-sim (a new one if it has none, e.g. after a revoke).
qbo_sim_token() {
  local sim="http://127.0.0.1:$QBO_PORT" token
  token="$(local_curl "$sim/control/realms/$1" | jq -r '.refreshToken // empty')" || return 1
  [[ -n "$token" ]] || token="$(local_curl -X POST "$sim/control/realms/$1/reconnect" | jq -r '.refreshToken')" || return 1
  echo "$token"
}

# An empty simulator (it keeps everything in memory) gets the dev companies: QBO_DEV_REALMS (3) ×
# QBO_DEV_DOCUMENTS (200), always the same ones (seed and asOf from .dev/qbo-seed.env; asOf is
# renewed after QBO_DEV_SEED_MAX_DAYS (7) days so that due dates stay current). Then each company
# the mirror does not have active is connected for tenant default, advisor dev-staff; after a
# fresh seed (the old refresh tokens are dead) or a new TOKEN_KEY, all of them.
provision_qbo() {
  ready_check qbo-sim || return 0
  command -v jq >/dev/null 2>&1 || apt_ensure jq || die "jq is needed to seed the QuickBooks simulator (make setup)"
  local sim="http://127.0.0.1:$QBO_PORT" realms answer fresh=0 seed as_of age_days body started
  mkdir -p "$STATE_DIR"
  realms="$(local_curl "$sim/control/realms")" || die "qbo-sim: GET /control/realms failed: $realms"
  if [[ "$(jq 'length' <<<"$realms")" == 0 ]]; then
    seed="$(qbo_seed_get QBO_SEED)" as_of="$(qbo_seed_get QBO_AS_OF)"
    if [[ -n "$as_of" ]]; then
      age_days=$((($(date +%s) - $(date -d "$as_of" +%s 2>/dev/null || echo 0)) / 86400))
      if ((age_days > ${QBO_DEV_SEED_MAX_DAYS:-7})); then
        log "qbo-sim: the dev companies were generated as of $as_of ($age_days days ago); generating them as of now (qbo-mirror records each document as updated once)"
        as_of=""
      fi
    fi
    [[ -n "$seed" ]] || { seed=42; qbo_seed_set QBO_SEED "$seed"; }
    [[ -n "$as_of" ]] || { as_of="$(date -u +%Y-%m-%dT%H:%M:%SZ)"; qbo_seed_set QBO_AS_OF "$as_of"; }
    body="$(jq -nc --argjson realms "${QBO_DEV_REALMS:-3}" --argjson docs "${QBO_DEV_DOCUMENTS:-200}" \
      --argjson seed "$seed" --arg asOf "$as_of" \
      '{realms: $realms, documentsPerRealm: $docs, seed: $seed, asOf: $asOf}')"
    answer="$(local_curl -X POST -H 'Content-Type: application/json' -d "$body" "$sim/control/seed")" \
      || die "qbo-sim: POST /control/seed failed: $answer"
    log "qbo-sim: seeded $(jq '.realms | length' <<<"$answer") companies × ${QBO_DEV_DOCUMENTS:-200} documents in $(jq .elapsedMs <<<"$answer") ms (seed $seed, as of $as_of)"
    fresh=1
    realms="$(local_curl "$sim/control/realms")" || die "qbo-sim: GET /control/realms failed: $realms"
  fi
  if ! ready_check qbo-mirror; then
    log "qbo-sim: $(jq length <<<"$realms") companies; not connected to qbo-mirror, which is not running (stack.sh up qbo-mirror)"
    return 0
  fi

  local key_fp active id name token ids=() connected=() list revoked tries=0 deadline
  key_fp="$(printf '%s' "$DEV_QBO_TOKEN_KEY" | sha256sum | cut -c1-16)"
  active="$(brain_sql "SELECT realm_id FROM qbo_mirror.realms WHERE state = 'active'
    AND tenant_id = '$QBO_DEV_TENANT' AND advisor_id = '$QBO_DEV_ADVISOR'")" \
    || die "qbo-mirror: cannot read qbo_mirror.realms"
  [[ "$(qbo_seed_get QBO_CONNECTED_KEY)" == "$key_fp" ]] || fresh=1
  started="$(brain_sql 'SELECT clock_timestamp()')"
  while IFS=$'\t' read -r id name; do
    [[ "$id" =~ ^[0-9A-Za-z_-]+$ ]] || die "qbo-sim: unexpected realm id '$id'"
    ids+=("$id")
    if ((fresh == 0)) && grep -qxF "$id" <<<"$active"; then continue; fi
    token="$(qbo_sim_token "$id")" || die "qbo-sim: no refresh token for realm $id"
    qbo_connect "$id" "$name" "$token"
    connected+=("$id")
  done < <(jq -r 'sort_by(.realmId)[] | [.realmId, .companyName] | @tsv' <<<"$realms")
  qbo_seed_set QBO_CONNECTED_KEY "$key_fp"
  if ((${#connected[@]} == 0)); then
    log "qbo-mirror: all ${#ids[@]} dev companies already connected (tenant $QBO_DEV_TENANT, advisor $QBO_DEV_ADVISOR)"
    return 0
  fi
  # Wait for their first sync. A mirror that started before the simulator was seeded may still
  # be failing with a dead token and mark a realm revoked after the connect: connect it again.
  list="$(printf "'%s'," "${connected[@]}")" list="${list%,}"
  deadline=$((SECONDS + ${QBO_CONNECT_TIMEOUT:-60}))
  while :; do
    revoked="$(brain_sql "SELECT realm_id, company_name FROM qbo_mirror.realms WHERE realm_id IN ($list) AND state = 'revoked'")"
    if [[ -n "$revoked" ]] && ((tries < 3)); then
      tries=$((tries + 1))
      while IFS=$'\t' read -r id name; do
        token="$(qbo_sim_token "$id")" || die "qbo-sim: no refresh token for realm $id"
        qbo_connect "$id" "$name" "$token"
      done <<<"$revoked"
    fi
    [[ "$(brain_sql "SELECT count(*) FROM qbo_mirror.realms WHERE realm_id IN ($list)
      AND state = 'active' AND last_synced_at >= '$started'")" == "${#connected[@]}" ]] && break
    if ((SECONDS >= deadline)); then
      log "warning: qbo-mirror: not every connected company has synced within ${QBO_CONNECT_TIMEOUT:-60} s; see .dev/logs/qbo-mirror.log and:"
      log "  psql -h 127.0.0.1 -p $PG_PORT -U postgres brain -c 'SELECT realm_id, state, last_synced_at, last_error FROM qbo_mirror.realms'"
      return 0
    fi
    sleep 0.5
  done
  log "qbo-mirror: connected ${#connected[@]} of ${#ids[@]} dev companies (tenant $QBO_DEV_TENANT, advisor $QBO_DEV_ADVISOR), synced: $(brain_sql "SELECT
    (SELECT count(*) FROM qbo_mirror.bills WHERE realm_id IN ($list) AND NOT deleted) || ' bills, ' ||
    (SELECT count(*) FROM qbo_mirror.invoices WHERE realm_id IN ($list) AND NOT deleted) || ' invoices'")"
}

# --- the broker as Apache Kafka (infra/kafka/kafka.sh, cluster dev) -------------------------------

# True when kafka.sh runs a node of the dev cluster.
kafka_running() {
  local f
  for f in "$RUN_DIR/kafka-$KAFKA_CLUSTER-node"[1-9].pid; do
    [[ -f "$f" ]] || continue
    f="${f##*/}"
    our_pid "${f%.pid}" >/dev/null && return 0
  done
  return 1
}

up_kafka() {
  local started pid bootstrap stored args=(start "$KAFKA_CLUSTER" --port "$BROKER_PORT")
  started="$(now_ms)"
  if pid="$(our_pid broker)"; then
    die "broker: tansu (pid $pid, started by stack.sh) holds the broker port; stop it first: BRAIN_BROKER=tansu infra/dev/stack.sh down broker"
  fi
  clear_stale broker
  stored="$(sed -n 's/^NODES=//p' "$STATE_DIR/kafka/$KAFKA_CLUSTER/cluster.env" 2>/dev/null || true)"
  if [[ "${KAFKA_FRESH:-0}" == 1 ]]; then
    args+=(--fresh)
  elif [[ -n "${KAFKA_NODES:-}" && -n "$stored" && "$KAFKA_NODES" != "$stored" ]]; then
    die "broker: the dev cluster has $stored node(s); KAFKA_FRESH=1 recreates it with $KAFKA_NODES (deletes its topics), e.g. make up KAFKA_NODES=$KAFKA_NODES KAFKA_FRESH=1"
  fi
  [[ -n "${KAFKA_NODES:-}" ]] && args+=(--nodes "$(kafka_nodes)")
  bootstrap="$(KAFKA_START_TIMEOUT="${READY_TIMEOUT:-${KAFKA_START_TIMEOUT:-120}}" bash "$KAFKA_SH" "${args[@]}")" \
    || die "broker: Apache Kafka did not start (logs: ${LOG_DIR#"$REPO_ROOT"/}/kafka-$KAFKA_CLUSTER-node<k>.log)"
  log "broker: ready in $(since "$started") s (Apache Kafka, cluster $KAFKA_CLUSTER: $bootstrap)"
}

down_kafka() {
  [[ -f "$STATE_DIR/kafka/$KAFKA_CLUSTER/cluster.env" ]] || return 0
  bash "$KAFKA_SH" stop "$KAFKA_CLUSTER"
}

status_kafka() {
  local n k name pid port state
  # What the cluster was created with, if it exists; else what `up` would create.
  n="$(sed -n 's/^NODES=//p' "$STATE_DIR/kafka/$KAFKA_CLUSTER/cluster.env" 2>/dev/null || true)"
  [[ -n "$n" ]] || n="$(kafka_nodes)"
  for ((k = 1; k <= n; k++)); do
    name=broker
    ((n > 1)) && name="broker/node$k"
    port=$((BROKER_PORT + 2 * (k - 1)))
    if pid="$(our_pid "kafka-$KAFKA_CLUSTER-node$k")"; then
      if port_open "$port"; then state=running; else state=not-ready; fi
    else
      pid=-
      if [[ -f "$RUN_DIR/kafka-$KAFKA_CLUSTER-node$k.pid" ]]; then
        state=crashed
      elif port_open "$port"; then
        state=external
      else
        state=stopped
      fi
    fi
    printf '%-18s %-8s %-6s %-10s %s\n' "$name" "$pid" "$port" "$state" "127.0.0.1:$port (Kafka node $k of $n)"
  done
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
    if [[ "$c" == postgres ]]; then
      up_postgres
    elif [[ "$c" == broker && "$(broker_kind)" == kafka ]]; then
      up_kafka
    else
      up_component "$c"
    fi
    # graph-calendar reads the staff's calendars from its first breath: seed them first.
    [[ "$c" == graph-sim ]] && provision_graph
  done
  if [[ " ${components[*]} " == *" qbo-sim "* || " ${components[*]} " == *" qbo-mirror "* ]]; then
    provision_qbo
  fi
  log "stack: up (${components[*]}); see: infra/dev/stack.sh status"
}

# The staff member whose calendar the dev stack offers (graph-calendar's STAFF), with a busy
# hour tomorrow; graph-sim keeps it in memory, so every `up` seeds it again (an upsert).
provision_graph() {
  local tomorrow body
  ready_check graph-sim || return 0
  tomorrow="$(date -u -d tomorrow +%Y-%m-%d)"
  body="{\"staff\":[{\"id\":\"dev-advisor\",\"displayName\":\"Dev Advisor\",\"mail\":\"dev-advisor@example.com\",\"busy\":[{\"start\":\"${tomorrow}T10:00:00Z\",\"end\":\"${tomorrow}T11:00:00Z\"}]}]}"
  curl --noproxy '*' -sS --fail-with-body --max-time 10 -X POST -H 'Content-Type: application/json' -d "$body" \
    "http://127.0.0.1:$GRAPH_PORT/control/seed" >/dev/null || die "seeding graph-sim's staff failed"
}

cmd_down() {
  local components c i
  mapfile -t components < <(select_components "$@")
  ((${#components[@]})) || exit 1
  for ((i = ${#components[@]} - 1; i >= 0; i--)); do
    c="${components[i]}"
    if [[ "$c" == broker ]]; then
      stop_component broker || clear_stale broker # tansu, if it was the broker
      down_kafka
      continue
    fi
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
    if [[ "$c" == broker && "$(broker_kind)" == kafka ]]; then
      status_kafka
      continue
    fi
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
  if [[ "$(broker_kind)" == tansu ]]; then
    echo "broker: tansu, memory:// storage, all topics and offsets are lost when it restarts."
  else
    echo "broker: Apache Kafka (infra/kafka/kafka.sh status $KAFKA_CLUSTER); data in ${STATE_DIR#"$REPO_ROOT"/}/kafka/$KAFKA_CLUSTER, kept across down/up (KAFKA_FRESH=1 starts it empty)."
  fi
  echo "emulator: in-memory, all documents are lost when it restarts."
  status_qbo
  echo "external = something stack.sh did not start answers on that port (left alone by down);"
  echo "crashed = started by stack.sh but gone (see stack.sh logs <component>)."
  echo "logs: ${LOG_DIR#"$REPO_ROOT"/}/<component>.log (Kafka: kafka-$KAFKA_CLUSTER-node<k>.log)"
}

# One line on the QuickBooks companies: in the simulator, and connected to / synced by the mirror.
status_qbo() {
  local line="qbo-sim: in-memory; \`up\` seeds the same dev companies again (${QBO_SEED_FILE#"$REPO_ROOT"/}) and connects them to qbo-mirror."
  if ready_check qbo-sim && command -v jq >/dev/null 2>&1; then
    line+=" Now: $(local_curl "http://127.0.0.1:$QBO_PORT/control/realms" 2>/dev/null | jq length 2>/dev/null || echo '?') companies"
    if ready_check qbo-mirror && [[ -n "$PG_BIN" ]]; then
      line+=", $(brain_sql "SELECT count(*) FILTER (WHERE state = 'active') || ' active in qbo-mirror (' ||
        count(*) FILTER (WHERE state = 'revoked') || ' revoked), last sync ' ||
        coalesce(to_char(max(last_synced_at), 'HH24:MI:SS'), 'never') FROM qbo_mirror.realms" 2>/dev/null || echo '?')"
    fi
    line+="."
  fi
  echo "$line"
}

cmd_env() {
  local c line
  declare -A seen=()
  load_secrets
  for line in "PG_PORT=$PG_PORT" "BROKER_PORT=$BROKER_PORT" "REGISTRY_PORT=$REGISTRY_PORT" \
    "EMULATOR_PORT=$EMULATOR_PORT" "VENTURES_PORT=$VENTURES_PORT" "GATEWAY_PORT=$GATEWAY_PORT" \
    "OIDC_PORT=$OIDC_PORT" \
    "VENTURES_SYNC_OPS_PORT=$VENTURES_SYNC_OPS_PORT" \
    "PROJECTION_WRITER_OPS_PORT=$PROJECTION_WRITER_OPS_PORT" \
    "CHANGE_LISTENER_OPS_PORT=$CHANGE_LISTENER_OPS_PORT" \
    "DLQ_REPLAYER_PORT=$DLQ_REPLAYER_PORT" \
    "QBO_PORT=$QBO_PORT" "QBO_MIRROR_OPS_PORT=$QBO_MIRROR_OPS_PORT"; do
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
  local follow=0 components c f files=()
  if [[ "${1:-}" == -f ]]; then follow=1; shift; fi
  mapfile -t components < <(select_components "$@")
  ((${#components[@]})) || exit 1
  for c in "${components[@]}"; do
    if [[ "$c" == broker && "$(broker_kind)" == kafka ]]; then
      for f in "$LOG_DIR/kafka-$KAFKA_CLUSTER-node"[1-9].log; do [[ -f "$f" ]] && files+=("$f"); done
      continue
    fi
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
  # Die on a bad BRAIN_BROKER or KAFKA_NODES here: later calls run in $(...), where die cannot stop us.
  broker_kind >/dev/null
  kafka_nodes >/dev/null
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
