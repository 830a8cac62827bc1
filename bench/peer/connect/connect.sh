#!/usr/bin/env bash
# The Kafka Connect peer of `make bench` (docs/benchmarks.md, "Kafka Connect"): a standalone Kafka
# Connect worker from the same Apache Kafka version as the broker, running Debezium's JDBC sink
# connector in upsert mode into PostgreSQL. Jars from Maven Central (bench/peer/connect/pom.xml).
#
#   connect.sh fetch       the worker's and the connector's jars into .cache/connect/ (no-op when current)
#   connect.sh run --bootstrap B --topic T --jdbc-url URL --table SCHEMA.TABLE [--user U]
#                  [--name N] [--group G] [--tasks K] [--work-dir D]
#                          a standalone worker with one connector (name N, default brain-bench-connect)
#                          reading topic T (JSON with schemas, key = application id) from the earliest
#                          offset in consumer group G (default connect-N) with K tasks (default 6),
#                          upserting into SCHEMA.TABLE by application_id. It runs in the foreground
#                          until SIGTERM/SIGINT; the script execs the JVM, so the caller's child is the
#                          worker itself. Its configuration and offsets file go to D (default: a new
#                          temporary directory, printed; the caller removes it).
#
# URL is a JDBC URL (jdbc:postgresql://host:port/db). A password, if any, comes from the
# environment (CONNECT_DB_PASSWORD), never the command line; it is written to D/connector.properties
# (mode 600). Each record's value is a LoanStatusChanged event in Connect's JSON envelope
# ({"schema": ..., "payload": ...}, JsonConverter with schemas.enable=true); the connector flattens
# it (Flatten$Value: loan.status -> loan_status) and keeps application_id, loan_id, status, version
# (ReplaceField$Value), the columns of the bench's `loans` table (bench/migrations/0001_bench.sql).
# Logs go to stderr.
#
# Environment: CONNECT_HEAP_OPTS (default "-Xms256m -Xmx2g", as Kafka's connect-standalone.sh),
# CONNECT_JVM_OPTS (appended), CONNECT_BATCH_SIZE (the connector's batch.size, default 500, as
# Brain's batches), CONNECT_REDUCTION_BUFFER (true: the connector keeps only the last record per
# key of each batch; default false, the connector's default).
set -euo pipefail
# shellcheck source=infra/dev/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../infra/dev" && pwd)/lib.sh"

PEER_DIR="$REPO_ROOT/bench/peer/connect"
POM="$PEER_DIR/pom.xml"
pom_property() { sed -n "s:.*<$1>\([^<]*\)</$1>.*:\1:p" "$2" | head -n1; }
KAFKA_VERSION="$(pom_property kafka.version "$POM")"
DEBEZIUM_VERSION="$(pom_property debezium.version "$POM")"
[[ -n "$KAFKA_VERSION" && -n "$DEBEZIUM_VERSION" ]] || die "no <kafka.version> or <debezium.version> in $POM"
BROKER_VERSION="$(pom_property kafka.version "$REPO_ROOT/infra/kafka/pom.xml")"
[[ "$KAFKA_VERSION" == "$BROKER_VERSION" ]] \
  || die "bench/peer/connect/pom.xml has Kafka $KAFKA_VERSION, infra/kafka/pom.xml $BROKER_VERSION: keep them equal"
CONNECT_HOME="$CACHE_DIR/connect/$KAFKA_VERSION-$DEBEZIUM_VERSION"
CONNECT_LIB="$CONNECT_HOME/lib"
PLUGINS="$CONNECT_HOME/plugins"
SINK_DIR="$PLUGINS/debezium-connector-jdbc"
JAVA=""

usage() { sed -n '2,28s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

# --- Java and the jars (as infra/kafka/kafka.sh does for the broker) ----------------------------

# Sets JAVA to a java >= 17 ($JAVA_HOME's, else the one on PATH).
find_java() {
  [[ -n "$JAVA" ]] && return 0
  local candidate major
  for candidate in "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java 2>/dev/null || true)"; do
    [[ -n "$candidate" && -x "$candidate" ]] || continue
    major="$("$candidate" -XshowSettings:properties -version 2>&1 \
      | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n1)"
    if [[ "$major" =~ ^[0-9]+$ ]] && ((major >= 17)); then
      JAVA="$candidate"
      return 0
    fi
  done
  return 1
}

fetch_key() { fingerprint "$POM"; }

lib_current() {
  [[ -f "$CONNECT_LIB/connect-runtime-$KAFKA_VERSION.jar" \
    && -f "$SINK_DIR/debezium-connector-jdbc-$DEBEZIUM_VERSION.jar" \
    && "$(cat "$CONNECT_HOME/stamp" 2>/dev/null)" == "$(fetch_key)" ]]
}

# mvn dependency:copy-dependencies of profile $1 into directory $2.
copy_profile() {
  local out
  # JAVA_HOME for mvn: the java found. mvn -q prints only errors, shown only when it fails.
  if ! out="$(JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$JAVA")")")" \
    mvn -q -B -Dstyle.color=never -f "$POM" -P "$1" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$2" 2>&1)"; then
    printf '%s\n' "$out" >&2
    die "mvn dependency:copy-dependencies -P $1 failed (Maven Central reachable? ~/.m2 writable?)"
  fi
}

# The worker's jars into $CONNECT_LIB and the connector's into $SINK_DIR, unless the stamp says
# they are current.
ensure_lib() {
  lib_current && return 0
  mkdir -p "$CONNECT_HOME"
  exec 7>"$CONNECT_HOME/fetch.lock"
  flock 7
  if lib_current; then
    exec 7>&-
    return 0
  fi
  local packages=()
  find_java || packages+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null 2>&1 || packages+=(maven)
  ((${#packages[@]} == 0)) || apt_ensure "${packages[@]}" || die "installing ${packages[*]} failed"
  find_java || die "no java >= 17 (set JAVA_HOME)"
  local started
  started="$(now_ms)"
  log "connect: fetching Kafka Connect $KAFKA_VERSION and Debezium's JDBC sink $DEBEZIUM_VERSION into ${CONNECT_HOME#"$REPO_ROOT"/}"
  rm -rf "$CONNECT_HOME/lib.new" "$CONNECT_HOME/plugins.new"
  copy_profile worker "$CONNECT_HOME/lib.new"
  copy_profile sink "$CONNECT_HOME/plugins.new/debezium-connector-jdbc"
  [[ -f "$CONNECT_HOME/lib.new/connect-runtime-$KAFKA_VERSION.jar" ]] || die "the fetched jars lack connect-runtime-$KAFKA_VERSION.jar"
  rm -rf "$CONNECT_LIB" "$PLUGINS"
  mv "$CONNECT_HOME/lib.new" "$CONNECT_LIB"
  mv "$CONNECT_HOME/plugins.new" "$PLUGINS"
  fetch_key >"$CONNECT_HOME/stamp"
  exec 7>&-
  log "connect: $(find "$CONNECT_HOME" -name '*.jar' | wc -l) jars, $(du -sh "$CONNECT_HOME" | cut -f1) in $(since "$started") s"
}

cmd_fetch() {
  (($# == 0)) || die "fetch takes no arguments"
  if lib_current; then
    find_java || die "no java >= 17 (set JAVA_HOME)"
    log "connect: Kafka Connect $KAFKA_VERSION + Debezium JDBC sink $DEBEZIUM_VERSION up to date (${CONNECT_HOME#"$REPO_ROOT"/}; java: $JAVA)"
    return 0
  fi
  ensure_lib
}

# --- the worker -----------------------------------------------------------------------------------

# A .properties value: backslashes and the characters that would end or split it escaped.
prop() {
  local v="${1//\\/\\\\}"
  v="${v//$'\n'/\\n}"
  printf '%s' "$v"
}

cmd_run() {
  local bootstrap="" topic="" jdbc_url="" table="" user="" name="brain-bench-connect" group="" tasks=6 dir=""
  while (($#)); do
    case "$1" in
      --bootstrap | --topic | --jdbc-url | --table | --user | --name | --group | --tasks | --work-dir)
        (($# >= 2)) || die "$1 needs a value"
        case "$1" in
          --bootstrap) bootstrap="$2" ;;
          --topic) topic="$2" ;;
          --jdbc-url) jdbc_url="$2" ;;
          --table) table="$2" ;;
          --user) user="$2" ;;
          --name) name="$2" ;;
          --group) group="$2" ;;
          --tasks) tasks="$2" ;;
          --work-dir) dir="$2" ;;
        esac
        shift 2
        ;;
      *) die "run: unknown argument $1 (connect.sh --help)" ;;
    esac
  done
  [[ -n "$bootstrap" && -n "$topic" && -n "$jdbc_url" && -n "$table" ]] \
    || die "usage: connect.sh run --bootstrap B --topic T --jdbc-url URL --table SCHEMA.TABLE [...]"
  [[ "$jdbc_url" == jdbc:postgresql://* ]] || die "--jdbc-url must be jdbc:postgresql://host:port/database"
  [[ "$table" =~ ^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$ ]] || die "--table must be schema.table (lower case)"
  [[ "$tasks" =~ ^[1-9][0-9]*$ ]] || die "--tasks must be a positive number"
  [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || die "--name: letters, digits, . _ - only"
  ensure_lib >&2
  find_java || die "no java >= 17 (set JAVA_HOME)"
  if [[ -z "$dir" ]]; then
    dir="$(mktemp -d "${TMPDIR:-/tmp}/brain-connect.XXXXXX")"
    log "connect: configuration and offsets in $dir (remove it when done)"
  fi
  mkdir -p "$dir"

  cat >"$dir/worker.properties" <<EOF
# Generated by bench/peer/connect/connect.sh run (rewritten on every run).
bootstrap.servers=$(prop "$bootstrap")
# Keys are application ids (plain strings); values are Connect's JSON envelope with the schema.
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
value.converter.schemas.enable=true
# Standalone: source offsets in a file (a sink's are the consumer group's). Sink offsets are
# committed every second, as Brain's runtime commits (Connect's default is 60 s).
offset.storage.file.filename=$dir/connect.offsets
offset.flush.interval.ms=1000
# The REST API on a free port: nothing here uses it, and 8083 may be taken.
listeners=http://127.0.0.1:0
# The connector in a class loader of its own, found through its ServiceLoader manifests.
plugin.path=$PLUGINS
plugin.discovery=service_load
EOF

  umask 077
  {
    echo "# Generated by bench/peer/connect/connect.sh run (rewritten on every run)."
    echo "name=$name"
    echo "connector.class=io.debezium.connector.jdbc.JdbcSinkConnector"
    echo "tasks.max=$tasks"
    echo "topics=$(prop "$topic")"
    [[ -z "$group" ]] || echo "consumer.override.group.id=$(prop "$group")"
    echo "connection.url=$(prop "$jdbc_url")"
    [[ -z "$user" ]] || echo "connection.username=$(prop "$user")"
    # The connector requires a non-empty password even where the server asks for none (trust).
    echo "connection.password=$(prop "${CONNECT_DB_PASSWORD:-unused}")"
    echo "# A plain last-write-wins upsert by application_id: INSERT ... ON CONFLICT DO UPDATE."
    echo "insert.mode=upsert"
    echo "primary.key.mode=record_value"
    echo "primary.key.fields=application_id"
    echo "table.name.format=$table"
    echo "schema.evolution=none"
    echo "delete.enabled=false"
    echo "batch.size=${CONNECT_BATCH_SIZE:-500}"
    echo "use.reduction.buffer=${CONNECT_REDUCTION_BUFFER:-false}"
    echo "# loan.loan_id -> loan_loan_id -> loan_id; keep only the table's columns."
    echo "transforms=flatten,columns"
    echo "transforms.flatten.type=org.apache.kafka.connect.transforms.Flatten\$Value"
    echo "transforms.flatten.delimiter=_"
    echo "transforms.columns.type=org.apache.kafka.connect.transforms.ReplaceField\$Value"
    echo "transforms.columns.include=application_id,loan_loan_id,loan_status,version"
    echo "transforms.columns.renames=loan_loan_id:loan_id,loan_status:status"
  } >"$dir/connector.properties"

  local jvm
  read -r -a jvm <<<"${CONNECT_HEAP_OPTS:--Xms256m -Xmx2g} ${CONNECT_JVM_OPTS:-}"
  log "connect: Kafka Connect $KAFKA_VERSION standalone, Debezium JDBC sink $DEBEZIUM_VERSION: $topic -> $table, $tasks task(s)"
  # Kafka's kafka-run-class.sh performance options. exec: the caller's child is the JVM (its pid,
  # its CPU, its signals). fds 7-9 are locks of the dev scripts: the JVM must not hold them.
  exec "$JAVA" "${jvm[@]}" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$PEER_DIR/log4j2.xml" -cp "$CONNECT_LIB/*" \
    org.apache.kafka.connect.cli.ConnectStandalone "$dir/worker.properties" "$dir/connector.properties" \
    7>&- 8>&- 9>&-
}

main() {
  local sub="${1:-}"
  (($#)) && shift
  case "$sub" in
    fetch) cmd_fetch "$@" ;;
    run) cmd_run "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
