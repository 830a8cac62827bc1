#!/usr/bin/env bash
# Apache Kafka (KRaft, combined broker+controller nodes) for development and tests, run from the
# Maven Central jars pinned in infra/kafka/pom.xml. No Docker, no binary tarball.
#
#   kafka.sh fetch                                 jars into .cache/kafka/<version>/lib (no-op when current)
#   kafka.sh start NAME [--nodes N] [--port P] [--fresh]
#                                                  start cluster NAME (its nodes that are not running),
#                                                  wait until every node is ready, print the bootstrap list
#   kafka.sh stop NAME [--node K]                  SIGTERM (SIGKILL after KAFKA_STOP_TIMEOUT s); all nodes by default
#   kafka.sh kill NAME [--node K]                  SIGKILL node K (all nodes without --node)
#   kafka.sh start-node NAME --node K              start node K again on its data, wait until it has rejoined
#   kafka.sh bootstrap NAME                        print the bootstrap list (127.0.0.1:P,127.0.0.1:P+2,...)
#   kafka.sh status [NAME]                         which nodes run (every cluster without NAME)
#   kafka.sh elect-leaders NAME                    preferred leader election for all topic partitions
#   kafka.sh cli TOOL [ARGS...]                    a Kafka CLI tool from the same jars (`kafka.sh cli` lists them)
#   kafka.sh wipe NAME                             stop cluster NAME and delete its data and configuration
#
# Node k (1-based) listens on PLAINTEXT 127.0.0.1:P+2(k-1) and CONTROLLER 127.0.0.1:P+2(k-1)+1
# (P defaults to 9092). Data: .dev/kafka/NAME/node<k>/data, config: .dev/kafka/NAME/node<k>/server.properties
# (regenerated on every start), logs: .dev/logs/kafka-NAME-node<k>.log, pids:
# .dev/run/kafka-NAME-node<k>.pid ("pid starttime"). Start-up logs go to stderr; stdout carries only
# what a caller captures (the bootstrap list, the CLI tools' output). See docs/broker.md.
#
# Environment: KAFKA_HEAP_OPTS (default "-Xms256m -Xmx768m"), KAFKA_JVM_OPTS (appended),
# KAFKA_START_TIMEOUT (s, default 120), KAFKA_STOP_TIMEOUT (s, default 30), KAFKA_ISR_TIMEOUT (s,
# default 60; how long start-node waits for the node to be back in sync), KAFKA_CDS=0 (no class
# data sharing archive).
set -euo pipefail
# shellcheck source=infra/dev/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../dev" && pwd)/lib.sh"

KAFKA_DIR="$REPO_ROOT/infra/kafka"
POM="$KAFKA_DIR/pom.xml"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\([^<]*\)</kafka.version>.*:\1:p' "$POM" | head -n1)"
[[ -n "$KAFKA_VERSION" ]] || die "no <kafka.version> in $POM"
KAFKA_HOME="$CACHE_DIR/kafka/$KAFKA_VERSION"
KAFKA_LIB="$KAFKA_HOME/lib"
CDS_ARCHIVE="$KAFKA_HOME/kafka.jsa" # class data sharing archive of a broker's start-up (fetch makes it)
CLUSTERS_DIR="$STATE_DIR/kafka"
DEFAULT_PORT=9092
MAX_NODES=9
JAVA=""
CDS=()       # JVM options that use CDS_ARCHIVE (set by cds_opts)
EXTRA_JVM=() # more JVM options for launch_node

# The cluster being worked on (set by load_cluster / cmd_start).
CLUSTER="" CDIR="" NODES="" PORT=""

usage() { sed -n '2,27s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

# --- Java and the jars --------------------------------------------------------------------------

java_major() {
  "$1" -XshowSettings:properties -version 2>&1 \
    | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n1
}

# Sets JAVA to a java >= 17 ($JAVA_HOME's, else the one on PATH); fails when there is none.
find_java() {
  [[ -n "$JAVA" ]] && return 0
  local candidate major
  for candidate in "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java 2>/dev/null || true)"; do
    [[ -n "$candidate" && -x "$candidate" ]] || continue
    major="$(java_major "$candidate")"
    if [[ "$major" =~ ^[0-9]+$ ]] && ((major >= 17)); then
      JAVA="$candidate"
      return 0
    fi
    log "kafka: $candidate is Java ${major:-?}; Kafka $KAFKA_VERSION needs Java 17 or newer"
  done
  return 1
}

# find_java, installing Debian's JRE 17 when there is no java >= 17.
ensure_java() {
  find_java && return 0
  local candidate
  apt_ensure openjdk-17-jre-headless || die "installing openjdk-17-jre-headless failed"
  candidate="/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture)/bin/java"
  [[ -x "$candidate" ]] || die "openjdk-17-jre-headless is installed but $candidate is missing"
  JAVA="$candidate"
}

fetch_key() { fingerprint "$POM"; }

lib_current() {
  [[ -f "$KAFKA_LIB/kafka_2.13-$KAFKA_VERSION.jar" && "$(cat "$KAFKA_HOME/stamp" 2>/dev/null)" == "$(fetch_key)" ]]
}

# Copies the pom's runtime dependencies into $KAFKA_LIB unless the stamp says they are current.
ensure_lib() {
  lib_current && return 0
  mkdir -p "$KAFKA_HOME"
  exec 7>"$KAFKA_HOME/fetch.lock"
  flock 7
  if lib_current; then
    exec 7>&-
    return 0
  fi
  # One apt run for what is missing: a JRE >= 17, Maven.
  local packages=()
  find_java || packages+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null 2>&1 || packages+=(maven)
  ((${#packages[@]} == 0)) || apt_ensure "${packages[@]}" || die "installing ${packages[*]} failed"
  ensure_java
  local started
  started="$(now_ms)"
  log "kafka: fetching Apache Kafka $KAFKA_VERSION (infra/kafka/pom.xml) into ${KAFKA_LIB#"$REPO_ROOT"/}"
  rm -rf "$KAFKA_LIB.new"
  # JAVA_HOME for mvn: the java found above. mvn -q prints only errors (and stray colour codes),
  # so its output is shown only when it fails.
  local out
  if ! out="$(JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$JAVA")")")" \
    mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$KAFKA_LIB.new" 2>&1)"; then
    printf '%s\n' "$out" >&2
    die "mvn dependency:copy-dependencies failed (Maven Central reachable? ~/.m2 writable?)"
  fi
  [[ -f "$KAFKA_LIB.new/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "the fetched jars lack kafka_2.13-$KAFKA_VERSION.jar"
  rm -rf "$KAFKA_LIB"
  mv "$KAFKA_LIB.new" "$KAFKA_LIB"
  fetch_key >"$KAFKA_HOME/stamp"
  exec 7>&-
  log "kafka: $(find "$KAFKA_LIB" -name '*.jar' | wc -l) jars, $(du -sh "$KAFKA_LIB" | cut -f1) in $(since "$started") s"
}

# --- class data sharing: a JVM that maps the classes a broker loads at start-up from an archive
# instead of loading and verifying them from the jars uses ~40% less CPU to start (measured:
# 3-4 instead of 5.5-6.7 CPU s per broker on this 2-core machine). The archive is tied to the
# jars and the JVM; the JVM checks it and silently runs without it when it does not match.
# KAFKA_CDS=0 disables it.

cds_key() { fingerprint "$KAFKA_HOME/stamp" "$(readlink -f "$JAVA")" "$(stat -c '%s %Y' "$(readlink -f "$JAVA")")"; }

cds_current() { [[ -s "$CDS_ARCHIVE" && "$(cat "$CDS_ARCHIVE.key" 2>/dev/null)" == "$(cds_key)" ]]; }

# Sets CDS to the options that use the archive, or to nothing.
cds_opts() {
  CDS=()
  [[ "${KAFKA_CDS:-1}" == 1 ]] && cds_current || return 0
  # -Xlog:cds*=off: the JVM would print archive warnings on stdout (the tools' output).
  CDS=("-XX:SharedArchiveFile=$CDS_ARCHIVE" -Xshare:auto "-Xlog:cds*=off")
}

# Makes the archive: starts a throwaway one-node broker with -XX:ArchiveClassesAtExit, waits until
# it has started, stops it (the JVM writes the archive as it exits). About 5-8 s, once per fetch.
# After a failure only `fetch` (ensure_cds retry) tries again for the same jars and JVM.
ensure_cds() {
  [[ "${KAFKA_CDS:-1}" == 1 ]] || return 0
  ensure_java
  cds_current && return 0
  if [[ "${1:-}" != retry && "$(cat "$CDS_ARCHIVE.failed" 2>/dev/null)" == "$(cds_key)" ]]; then
    return 0
  fi
  exec 7>"$KAFKA_HOME/fetch.lock"
  flock 7
  if cds_current; then
    exec 7>&-
    return 0
  fi
  local started tmp
  started="$(now_ms)"
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/kafka-cds.XXXXXX")"
  log "kafka: making the class data sharing archive ${CDS_ARCHIVE#"$REPO_ROOT"/} (one broker start)"
  if (
    CLUSTER="cds-$$" CDIR="$tmp" NODES=1 PORT=""
    mkdir -p "$RUN_DIR" "$LOG_DIR" # a fresh clone has neither; the format's log goes there
    while :; do # two free ports
      PORT=$((20000 + RANDOM % 20000 * 2))
      port_listening "$PORT" || port_listening "$((PORT + 1))" || break
    done
    rm -f "$CDS_ARCHIVE.tmp"
    write_properties 1
    format_nodes 1 2>/dev/null
    # shellcheck disable=SC2030 # for this subshell's launch_node only
    EXTRA_JVM=("-XX:ArchiveClassesAtExit=$CDS_ARCHIVE.tmp")
    launch_node 1
    ok=0
    KAFKA_START_TIMEOUT=120 wait_nodes 1 2>/dev/null && ok=1
    KAFKA_STOP_TIMEOUT=60 signal_nodes TERM 1 2>/dev/null
    if ((ok)) && [[ -s "$CDS_ARCHIVE.tmp" ]]; then
      rm -f "$(node_log 1)"
    else
      mv -f "$(node_log 1)" "$LOG_DIR/kafka-cds-archive.log"
      false
    fi
  ); then
    mv -f "$CDS_ARCHIVE.tmp" "$CDS_ARCHIVE"
    cds_key >"$CDS_ARCHIVE.key"
    rm -f "$CDS_ARCHIVE.failed"
    log "kafka: archive made in $(since "$started") s ($(du -h "$CDS_ARCHIVE" | cut -f1))"
  else
    rm -f "$CDS_ARCHIVE.tmp"
    cds_key >"$CDS_ARCHIVE.failed"
    log "kafka: warning: could not make the class data sharing archive (log: ${LOG_DIR#"$REPO_ROOT"/}/kafka-cds-archive.log); the JVMs start without it"
  fi
  rm -rf "${tmp:?}"
  exec 7>&-
}

cmd_fetch() {
  (($# == 0)) || die "fetch takes no arguments"
  if lib_current; then
    ensure_java
    ensure_cds retry
    log "kafka: Apache Kafka $KAFKA_VERSION up to date (${KAFKA_LIB#"$REPO_ROOT"/}; java: $JAVA)"
    return 0
  fi
  ensure_lib
  ensure_cds retry
}

# Runs a Java main class from the jars with the CLI tools' logging. $1: heap (as in Kafka's
# kafka-run-class.sh: 256M, 512M for the perf tests), $2: quick|long. Quick (admin commands that
# run for a second) use the C1 compiler and the serial GC: about 0.4 s less CPU per call; long
# ones (perf tests, console clients) get the full JIT and G1.
run_tool() {
  local heap="$1" kind="$2" class="$3" vm=()
  shift 3
  ensure_lib >&2
  ensure_java >&2
  if [[ "$kind" == quick ]]; then
    vm=(-XX:+UseSerialGC -XX:TieredStopAtLevel=1)
  else
    vm=(-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35)
  fi
  cds_opts
  "$JAVA" "-Xmx$heap" "${vm[@]}" "${CDS[@]}" -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$KAFKA_DIR/tools-log4j2.yaml" \
    -cp "$KAFKA_LIB/*" "$class" "$@"
}

# --- clusters and nodes -------------------------------------------------------------------------

check_name() {
  [[ "$1" =~ ^[a-z0-9][a-z0-9_-]{0,40}$ ]] || die "cluster name '$1': use lower-case letters, digits, - and _"
}

# Sets CLUSTER and CDIR, and NODES/PORT from the stored cluster.env; fails when there is none.
load_cluster() {
  check_name "$1"
  CLUSTER="$1" CDIR="$CLUSTERS_DIR/$1" NODES="" PORT=""
  [[ -f "$CDIR/cluster.env" ]] || return 1
  local key value
  while IFS='=' read -r key value; do
    case "$key" in
      NODES) NODES="$value" ;;
      PORT) PORT="$value" ;;
    esac
  done <"$CDIR/cluster.env"
  [[ "$NODES" =~ ^[1-9]$ && "$PORT" =~ ^[1-9][0-9]*$ ]] || die "$CDIR/cluster.env is damaged; run: kafka.sh wipe $1"
}

require_cluster() {
  load_cluster "$1" || die "no cluster '$1' (${CLUSTERS_DIR#"$REPO_ROOT"/}/$1/cluster.env); start it with: kafka.sh start $1"
}

node_id() { echo "kafka-$CLUSTER-node$1"; } # name of the pid file (.dev/run/) and log (.dev/logs/)
node_dir() { echo "$CDIR/node$1"; }
node_log() { echo "$LOG_DIR/$(node_id "$1").log"; }
broker_port() { echo $((PORT + 2 * ($1 - 1))); }
controller_port() { echo $((PORT + 2 * ($1 - 1) + 1)); }

bootstrap_list() {
  local k list=()
  for ((k = 1; k <= NODES; k++)); do list+=("127.0.0.1:$(broker_port "$k")"); done
  local IFS=,
  echo "${list[*]}"
}

# The bootstrap list of the nodes that run (all nodes when none does).
running_bootstrap() {
  local k list=()
  for ((k = 1; k <= NODES; k++)); do
    our_pid "$(node_id "$k")" >/dev/null && list+=("127.0.0.1:$(broker_port "$k")")
  done
  ((${#list[@]})) || { bootstrap_list; return 0; }
  local IFS=,
  echo "${list[*]}"
}

# Node numbers from an optional --node K (all nodes without it).
select_nodes() {
  local node="$1" k
  if [[ -n "$node" ]]; then
    if ! [[ "$node" =~ ^[1-9]$ ]] || ((node > NODES)); then
      die "--node $node: cluster $CLUSTER has nodes 1-$NODES"
    fi
    echo "$node"
  else
    for ((k = 1; k <= NODES; k++)); do echo "$k"; done
  fi
}

lock_cluster() {
  mkdir -p "$RUN_DIR"
  exec 8>"$RUN_DIR/kafka-$CLUSTER.lock"
  flock -n 8 || { log "kafka: waiting for another kafka.sh on cluster $CLUSTER"; flock 8; }
}

# Writes node k's server.properties (every start: the file always matches this script).
write_properties() {
  local k="$1" dir voters="" v rf isr
  dir="$(node_dir "$k")"
  for ((v = 1; v <= NODES; v++)); do voters+="${voters:+,}$v@127.0.0.1:$(controller_port "$v")"; done
  rf=$((NODES < 3 ? NODES : 3))
  isr=$((NODES >= 3 ? 2 : 1))
  mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<EOF
# Generated by infra/kafka/kafka.sh for cluster $CLUSTER, node $k of $NODES (rewritten on every
# start; change kafka.sh, not this file). Why each setting: docs/broker.md.
process.roles=broker,controller
node.id=$k
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(broker_port "$k"),CONTROLLER://127.0.0.1:$(controller_port "$k")
advertised.listeners=PLAINTEXT://127.0.0.1:$(broker_port "$k"),CONTROLLER://127.0.0.1:$(controller_port "$k")
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$dir/data

# Replication: min(nodes, 3) copies; acks=all needs 2 in sync when there are 3 or more nodes.
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr

# Topics are created explicitly (as on a managed Kafka); small internal topics start fast.
auto.create.topics.enable=false
num.partitions=1
offsets.topic.num.partitions=6
transaction.state.log.num.partitions=6
log.segment.bytes=16777216
log.cleaner.backoff.ms=1000
log.cleaner.dedupe.buffer.size=33554432

# Consumer groups: no initial delay; short sessions so a killed member's partitions move fast.
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
group.consumer.session.timeout.ms=6000
group.consumer.min.session.timeout.ms=1000
group.consumer.heartbeat.interval.ms=1000
group.consumer.min.heartbeat.interval.ms=500

# Failure detection: a killed node is fenced (and leaves the ISRs) after 6 s instead of 9 s.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=6000
replica.lag.time.max.ms=10000

# A 2-core machine running several nodes next to the tests. The controller's no-op metadata
# record every 5 s instead of 500 ms halves an idle node's CPU (4 % -> 2.5 % of a core).
metadata.max.idle.interval.ms=5000
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
}

formatted() { [[ -f "$(node_dir "$1")/data/meta.properties" ]]; }

# A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (Uuid.toString); not
# starting with '-' (like Uuid.randomUuid, so that it can never be taken for a flag).
new_cluster_id() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" == -* || "$id" == AAAAAAAAAAAAAAAAAAAAA[AQ] ]] || break
  done
  echo "$id"
}

cluster_id() {
  if [[ ! -s "$CDIR/cluster.id" ]]; then
    local k id=""
    for ((k = 1; k <= NODES; k++)); do # data formatted before cluster.id existed
      formatted "$k" && id="$(sed -n 's/^cluster\.id=//p' "$(node_dir "$k")/data/meta.properties")"
      [[ -n "$id" ]] && break
    done
    echo "${id:-$(new_cluster_id)}" >"$CDIR/cluster.id"
  fi
  cat "$CDIR/cluster.id"
}

# Formats the data directories of the given nodes (in parallel; StorageTool exits the JVM).
format_nodes() {
  local id k pids=() failed=0 i
  id="$(cluster_id)"
  cds_opts
  for k in "$@"; do
    log "kafka: formatting ${CDIR#"$REPO_ROOT"/}/node$k/data (cluster id $id)"
    "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 "${CDS[@]}" \
      "-Dlog4j2.configurationFile=$KAFKA_DIR/tools-log4j2.yaml" -cp "$KAFKA_LIB/*" \
      kafka.tools.StorageTool format -t "$id" -c "$(node_dir "$k")/server.properties" \
      >>"$(node_log "$k")" 2>&1 </dev/null 7>&- 8>&- 9>&- &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || failed=1
  done
  if ((failed)); then
    for k in "$@"; do formatted "$k" || { log "kafka: formatting node $k failed:"; tail -n 20 "$(node_log "$k")" >&2; }; done
    die "formatting cluster $CLUSTER failed"
  fi
}

# Starts node k's JVM detached (own session), appending to its log; records pid and log offset.
launch_node() {
  local k="$1" dir log pid jvm
  dir="$(node_dir "$k")" log="$(node_log "$k")"
  read -r -a jvm <<<"${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m} ${KAFKA_JVM_OPTS:-}"
  cds_opts
  # shellcheck disable=SC2031 # set in ensure_cds's subshell, which calls this function
  ((${#EXTRA_JVM[@]})) && CDS=() # making the archive: not from an (older) archive
  # shellcheck disable=SC2031
  jvm+=("${CDS[@]}" "${EXTRA_JVM[@]}" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$KAFKA_DIR/log4j2.yaml" "-Dkafka.logs.dir=$LOG_DIR")
  mkdir -p "$LOG_DIR"
  stat -c %s "$log" 2>/dev/null >"$dir/log.offset" || echo 0 >"$dir/log.offset"
  printf '=== %s kafka.sh: starting node %s of cluster %s (Apache Kafka %s) ===\n' \
    "$(date -Is)" "$k" "$CLUSTER" "$KAFKA_VERSION" >>"$log"
  # The subshell execs into setsid, which (not being a group leader) execs java: $! is java's pid.
  # fds 7-9 are kafka.sh's and stack.sh's locks: the broker must not hold them.
  (cd "$dir" && exec setsid "$JAVA" "${jvm[@]}" -cp "$KAFKA_LIB/*" kafka.Kafka server.properties) \
    >>"$log" 2>&1 </dev/null 7>&- 8>&- 9>&- &
  pid=$!
  write_pid "$(node_id "$k")" "$pid"
}

# True once node k's log shows "Kafka Server started" since its last launch (KafkaRaftServer logs
# it after the broker has caught up with the metadata and been unfenced by the controller).
node_started() {
  local offset
  offset="$(cat "$(node_dir "$1")/log.offset" 2>/dev/null || echo 0)"
  tail -c "+$((offset + 1))" "$(node_log "$1")" 2>/dev/null | grep -q -m1 'Kafka Server started'
}

node_ready() { our_pid "$(node_id "$1")" >/dev/null && node_started "$1" && port_open "$(broker_port "$1")"; }

# Waits until every given node is ready; on a timeout or an exit shows the log's tail and fails.
wait_nodes() {
  local timeout="${KAFKA_START_TIMEOUT:-120}" deadline k pending
  deadline=$(($(now_ms) + timeout * 1000))
  pending=("$@")
  while ((${#pending[@]})); do
    local still=()
    for k in "${pending[@]}"; do
      if node_ready "$k"; then continue; fi
      if ! our_pid "$(node_id "$k")" >/dev/null; then
        log "kafka: node $k of cluster $CLUSTER exited during start-up; last lines of ${LOG_DIR#"$REPO_ROOT"/}/$(node_id "$k").log:"
        tail -n 30 "$(node_log "$k")" | sed 's/^/  | /' >&2
        rm -f "$RUN_DIR/$(node_id "$k").pid"
        return 1
      fi
      still+=("$k")
    done
    pending=("${still[@]}")
    ((${#pending[@]})) || break
    if (($(now_ms) >= deadline)); then
      log "kafka: node(s) ${pending[*]} of cluster $CLUSTER not ready within $timeout s (KAFKA_START_TIMEOUT); last lines:"
      for k in "${pending[@]}"; do tail -n 15 "$(node_log "$k")" | sed "s/^/  node$k | /" >&2; done
      return 1
    fi
    sleep 0.2
  done
}

require_ports_free() {
  local k="$1" port
  for port in "$(broker_port "$k")" "$(controller_port "$k")"; do
    if port_open "$port"; then
      log "kafka: port $port (node $k of cluster $CLUSTER) is taken by a process kafka.sh did not start:"
      ss -Hltnp "sport = :$port" >&2 2>/dev/null || true
      exit 1
    fi
  done
}

# True when a socket listens on 127.0.0.1:$1 (ss; a connection attempt where ss is missing).
port_listening() {
  if command -v ss >/dev/null 2>&1; then
    [[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]]
  else
    port_open "$1"
  fi
}

# Sends SIG$1 to the given nodes that run, waits until they are gone (SIGKILL after the timeout).
signal_nodes() {
  local signal="$1" k pid deadline left
  shift
  local pids=() names=()
  for k in "$@"; do
    if pid="$(our_pid "$(node_id "$k")")"; then
      kill -s "$signal" "$pid" 2>/dev/null || true
      pids+=("$pid") names+=("$k")
    else
      rm -f "$RUN_DIR/$(node_id "$k").pid"
    fi
  done
  ((${#pids[@]})) || return 0
  deadline=$((SECONDS + ${KAFKA_STOP_TIMEOUT:-30}))
  while :; do
    left=()
    for k in "${names[@]}"; do our_pid "$(node_id "$k")" >/dev/null && left+=("$k"); done
    ((${#left[@]})) || break
    if [[ "$signal" != KILL ]] && ((SECONDS >= deadline)); then
      log "kafka: node(s) ${left[*]} of cluster $CLUSTER still running ${KAFKA_STOP_TIMEOUT:-30} s after SIG$signal; sending SIGKILL"
      for k in "${left[@]}"; do
        if pid="$(our_pid "$(node_id "$k")")"; then kill -s KILL "$pid" 2>/dev/null || true; fi
      done
      signal=KILL
    fi
    sleep 0.1
  done
  for k in "${names[@]}"; do rm -f "$RUN_DIR/$(node_id "$k").pid"; done
  # After SIGKILL the JVM's main thread is a zombie (our_pid: gone) while its other threads still
  # exit and hold the sockets: wait until the ports are released, so a restart can bind them.
  deadline=$((SECONDS + 10))
  for k in "${names[@]}"; do
    while port_listening "$(broker_port "$k")" || port_listening "$(controller_port "$k")"; do
      ((SECONDS < deadline)) || break
      sleep 0.1
    done
  done
  log "kafka: cluster $CLUSTER: node(s) ${names[*]} stopped (SIG$signal)"
}

# The nodes of cluster $CLUSTER that have a pid file (running or not), whatever cluster.env says.
pid_file_nodes() {
  local f
  for f in "$RUN_DIR/kafka-$CLUSTER-node"[1-9].pid; do
    [[ -f "$f" ]] && { f="${f%.pid}"; echo "${f##*node}"; }
  done
  return 0
}

# Waits until node k is in the ISR of every partition it has a replica of (it is back in sync).
wait_in_sync() {
  local k="$1" timeout="${KAFKA_ISR_TIMEOUT:-60}" deadline out behind
  ((NODES > 1)) || return 0
  deadline=$((SECONDS + timeout))
  while :; do
    out="$(run_tool 256M quick org.apache.kafka.tools.TopicCommand --bootstrap-server "$(running_bootstrap)" --describe 2>/dev/null)" || out="?"
    behind="$(awk -v k="$k" '
      /Partition:/ {
        rep = ""; isr = ""
        for (i = 1; i < NF; i++) { if ($i == "Replicas:") rep = $(i + 1); if ($i == "Isr:") isr = $(i + 1) }
        if (("," rep ",") ~ ("," k ",") && ("," isr ",") !~ ("," k ",")) n++
      }
      END { print n + 0 }' <<<"$out")"
    if [[ "$out" != "?" && "$behind" == 0 ]]; then
      return 0
    fi
    if ((SECONDS >= deadline)); then
      log "kafka: warning: node $k of cluster $CLUSTER is not yet in sync for ${behind} partition(s) after $timeout s (KAFKA_ISR_TIMEOUT)"
      return 0
    fi
    sleep 1
  done
}

# --- subcommands --------------------------------------------------------------------------------

cmd_start() {
  local name="" nodes="" port="" fresh=0
  while (($#)); do
    case "$1" in
      --nodes) nodes="${2:-}"; shift 2 || die "--nodes needs a value" ;;
      --nodes=*) nodes="${1#*=}"; shift ;;
      --port) port="${2:-}"; shift 2 || die "--port needs a value" ;;
      --port=*) port="${1#*=}"; shift ;;
      --fresh) fresh=1; shift ;;
      -*) die "start: unknown option $1" ;;
      *) [[ -z "$name" ]] || die "start: one cluster name only"; name="$1"; shift ;;
    esac
  done
  [[ -n "$name" ]] || die "usage: kafka.sh start NAME [--nodes N] [--port P] [--fresh]"
  [[ -z "$nodes" || "$nodes" =~ ^[1-9]$ ]] || die "--nodes must be 1-$MAX_NODES"
  [[ -z "$port" || "$port" =~ ^[1-9][0-9]*$ ]] || die "--port must be a number"
  check_name "$name"
  CLUSTER="$name"
  local started
  started="$(now_ms)"
  lock_cluster
  # stdout is the bootstrap list only: whatever installing or fetching prints goes to stderr.
  ensure_lib >&2
  ensure_java >&2
  ensure_cds >&2

  if ((fresh)); then
    local victims
    CDIR="$CLUSTERS_DIR/$name"
    mapfile -t victims < <(pid_file_nodes)
    ((${#victims[@]} == 0)) || signal_nodes KILL "${victims[@]}"
    rm -rf "${CDIR:?}"
    local f
    for f in "$LOG_DIR/kafka-$name-node"[1-9].log; do [[ -f "$f" ]] && mv -f "$f" "$f.prev"; done
  fi

  if load_cluster "$name"; then
    if [[ -n "$nodes" && "$nodes" != "$NODES" ]]; then
      die "cluster $name was created with $NODES node(s); to recreate it with $nodes: kafka.sh start $name --nodes $nodes --fresh (deletes its data)"
    fi
    if [[ -n "$port" && "$port" != "$PORT" ]]; then
      local k
      for ((k = 1; k <= NODES; k++)); do
        our_pid "$(node_id "$k")" >/dev/null && die "cluster $name runs on port $PORT; stop it first to move it to $port"
      done
      PORT="$port"
    fi
  else
    CDIR="$CLUSTERS_DIR/$name" NODES="${nodes:-1}" PORT="${port:-$DEFAULT_PORT}"
  fi
  ((PORT + 2 * NODES - 1 <= 65535)) || die "ports $PORT-$((PORT + 2 * NODES - 1)) do not fit below 65536"
  mkdir -p "$CDIR" "$RUN_DIR" "$LOG_DIR"
  printf 'NODES=%s\nPORT=%s\n' "$NODES" "$PORT" >"$CDIR/cluster.env"

  local k to_start=() to_format=() running=()
  for ((k = 1; k <= NODES; k++)); do
    if our_pid "$(node_id "$k")" >/dev/null; then
      running+=("$k")
      continue
    fi
    rm -f "$RUN_DIR/$(node_id "$k").pid"
    require_ports_free "$k"
    write_properties "$k"
    to_start+=("$k")
    formatted "$k" || to_format+=("$k")
  done
  ((${#running[@]} == 0)) || log "kafka: cluster $name: node(s) ${running[*]} already running"
  ((${#to_format[@]} == 0)) || format_nodes "${to_format[@]}"
  for k in "${to_start[@]}"; do launch_node "$k"; done
  if ((${#to_start[@]})); then
    log "kafka: cluster $name: starting node(s) ${to_start[*]} of $NODES (Apache Kafka $KAFKA_VERSION, ports $PORT-$((PORT + 2 * NODES - 1)))"
  fi
  local all=()
  for ((k = 1; k <= NODES; k++)); do all+=("$k"); done
  if ! wait_nodes "${all[@]}"; then
    ((${#to_start[@]} == 0)) || signal_nodes TERM "${to_start[@]}"
    die "cluster $name did not start (logs: ${LOG_DIR#"$REPO_ROOT"/}/kafka-$name-node<k>.log)"
  fi
  if ((${#to_start[@]})); then
    log "kafka: cluster $name ready in $(since "$started") s: $(bootstrap_list)"
  fi
  bootstrap_list
}

cmd_start_node() {
  local name="" node=""
  while (($#)); do
    case "$1" in
      --node) node="${2:-}"; shift 2 || die "--node needs a value" ;;
      --node=*) node="${1#*=}"; shift ;;
      -*) die "start-node: unknown option $1" ;;
      *) name="$1"; shift ;;
    esac
  done
  [[ -n "$name" && -n "$node" ]] || die "usage: kafka.sh start-node NAME --node K"
  require_cluster "$name"
  node="$(select_nodes "$node")"
  local started
  started="$(now_ms)"
  lock_cluster
  if our_pid "$(node_id "$node")" >/dev/null; then
    wait_nodes "$node" || die "node $node of cluster $name is running but not ready"
    log "kafka: node $node of cluster $name already running"
    return 0
  fi
  if ! formatted "$node" || [[ ! -f "$(node_dir "$node")/server.properties" ]]; then
    die "node $node of cluster $name has no formatted data; use: kafka.sh start $name"
  fi
  ensure_lib >&2
  ensure_java >&2
  rm -f "$RUN_DIR/$(node_id "$node").pid"
  require_ports_free "$node"
  launch_node "$node"
  if ! wait_nodes "$node"; then
    signal_nodes TERM "$node"
    die "node $node of cluster $name did not start"
  fi
  log "kafka: node $node of cluster $name back in $(since "$started") s (unfenced); waiting until it is in sync"
  wait_in_sync "$node"
  log "kafka: node $node of cluster $name rejoined in $(since "$started") s"
}

# stop/kill NAME [--node K]
cmd_signal() {
  local signal="$1" name="" node=""
  shift
  while (($#)); do
    case "$1" in
      --node) node="${2:-}"; shift 2 || die "--node needs a value" ;;
      --node=*) node="${1#*=}"; shift ;;
      -*) die "unknown option $1" ;;
      *) name="$1"; shift ;;
    esac
  done
  [[ -n "$name" ]] || die "usage: kafka.sh stop|kill NAME [--node K]"
  if ! load_cluster "$name"; then
    local orphans
    mapfile -t orphans < <(pid_file_nodes)
    ((${#orphans[@]})) || { log "kafka: no cluster '$name'; nothing to stop"; return 0; }
    lock_cluster
    signal_nodes "$signal" "${orphans[@]}"
    return 0
  fi
  local selected
  mapfile -t selected < <(select_nodes "$node")
  lock_cluster
  signal_nodes "$signal" "${selected[@]}"
}

cmd_wipe() {
  (($# == 1)) || die "usage: kafka.sh wipe NAME"
  cmd_signal TERM "$1"
  CLUSTER="$1" CDIR="$CLUSTERS_DIR/$1"
  rm -rf "${CDIR:?}"
  rm -f "$LOG_DIR/kafka-$1-node"[1-9].log "$LOG_DIR/kafka-$1-node"[1-9].log.prev "$RUN_DIR/kafka-$1.lock"
  log "kafka: cluster $1 deleted"
}

cmd_bootstrap() {
  (($# == 1)) || die "usage: kafka.sh bootstrap NAME"
  require_cluster "$1"
  bootstrap_list
}

status_of() {
  local k pid state
  printf '%-12s %-6s %-8s %-10s %-11s %s\n' CLUSTER NODE PID PLAINTEXT CONTROLLER STATE
  for ((k = 1; k <= NODES; k++)); do
    if pid="$(our_pid "$(node_id "$k")")"; then
      # (ss, not a connection: a loaded machine must not make a running node look "starting")
      if node_started "$k" && port_listening "$(broker_port "$k")"; then state=running; else state=starting; fi
    else
      pid=-
      if [[ -f "$RUN_DIR/$(node_id "$k").pid" ]]; then state=crashed; else state=stopped; fi
    fi
    printf '%-12s %-6s %-8s %-10s %-11s %s\n' "$CLUSTER" "$k" "$pid" "$(broker_port "$k")" "$(controller_port "$k")" "$state"
  done
}

cmd_status() {
  local names=() n
  if (($#)); then
    names=("$@")
  else
    for n in "$CLUSTERS_DIR"/*/cluster.env; do [[ -f "$n" ]] && { n="${n%/cluster.env}"; names+=("${n##*/}"); }; done
    ((${#names[@]})) || { log "kafka: no clusters in ${CLUSTERS_DIR#"$REPO_ROOT"/}"; return 0; }
  fi
  local first=1
  for n in "${names[@]}"; do
    require_cluster "$n"
    if ((first)); then status_of; else status_of | tail -n +2; fi
    first=0
  done
  echo "(Apache Kafka $KAFKA_VERSION; stopped = not running; crashed = started by kafka.sh but gone, see ${LOG_DIR#"$REPO_ROOT"/}/kafka-<cluster>-node<k>.log)"
}

cmd_elect_leaders() {
  (($# == 1)) || die "usage: kafka.sh elect-leaders NAME"
  require_cluster "$1"
  run_tool 256M quick org.apache.kafka.tools.LeaderElectionCommand --bootstrap-server "$(running_bootstrap)" \
    --election-type PREFERRED --all-topic-partitions
}

# TOOL -> main class (the name of Kafka's bin/kafka-TOOL.sh).
tool_class() {
  case "$1" in
    topics) echo org.apache.kafka.tools.TopicCommand ;;
    consumer-groups) echo org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
    console-producer) echo org.apache.kafka.tools.ConsoleProducer ;;
    console-consumer) echo org.apache.kafka.tools.consumer.ConsoleConsumer ;;
    producer-perf-test) echo org.apache.kafka.tools.ProducerPerformance ;;
    consumer-perf-test) echo org.apache.kafka.tools.ConsumerPerformance ;;
    metadata-quorum) echo org.apache.kafka.tools.MetadataQuorumCommand ;;
    leader-election) echo org.apache.kafka.tools.LeaderElectionCommand ;;
    get-offsets) echo org.apache.kafka.tools.GetOffsetShell ;;
    configs) echo kafka.admin.ConfigCommand ;;
    delete-records) echo org.apache.kafka.tools.DeleteRecordsCommand ;;
    transactions) echo org.apache.kafka.tools.TransactionsCommand ;;
    log-dirs) echo org.apache.kafka.tools.LogDirsCommand ;;
    reassign-partitions) echo org.apache.kafka.tools.reassign.ReassignPartitionsCommand ;;
    features) echo org.apache.kafka.tools.FeatureCommand ;;
    cluster) echo org.apache.kafka.tools.ClusterTool ;;
    broker-api-versions) echo org.apache.kafka.tools.BrokerApiVersionsCommand ;;
    dump-log) echo kafka.tools.DumpLogSegments ;;
    storage) echo kafka.tools.StorageTool ;;
    *) return 1 ;;
  esac
}
TOOLS=(topics consumer-groups console-producer console-consumer producer-perf-test consumer-perf-test
  metadata-quorum leader-election get-offsets configs delete-records transactions log-dirs
  reassign-partitions features cluster broker-api-versions dump-log storage)

cmd_cli() {
  local tool="${1:-}" class heap=256M kind=quick
  if [[ -z "$tool" ]] || ! class="$(tool_class "$tool")"; then
    [[ -z "$tool" ]] || log "kafka: unknown tool '$tool'"
    log "usage: kafka.sh cli TOOL [ARGS...]   (TOOL = Kafka's bin/kafka-TOOL.sh), TOOL one of:"
    log "  ${TOOLS[*]}"
    log "e.g.: kafka.sh cli topics --bootstrap-server \"\$(kafka.sh bootstrap dev)\" --list"
    exit 2
  fi
  shift
  case "$tool" in
    *-perf-test) heap=512M kind=long ;;
    console-*) kind=long ;;
  esac
  run_tool "$heap" "$kind" "$class" "$@"
}

main() {
  local sub="${1:-}"
  (($#)) && shift
  case "$sub" in
    fetch) cmd_fetch "$@" ;;
    start) cmd_start "$@" ;;
    start-node) cmd_start_node "$@" ;;
    stop) cmd_signal TERM "$@" ;;
    kill) cmd_signal KILL "$@" ;;
    wipe) cmd_wipe "$@" ;;
    bootstrap) cmd_bootstrap "$@" ;;
    status) cmd_status "$@" ;;
    elect-leaders) cmd_elect_leaders "$@" ;;
    cli) cmd_cli "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
