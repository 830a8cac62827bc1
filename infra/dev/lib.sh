# shellcheck shell=bash
# Helpers shared by infra/dev/*.sh. Sourced, never executed.
# shellcheck disable=SC2034 # the paths below are used by the scripts that source this file

DEV_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$DEV_DIR/../.." && pwd)"
CACHE_DIR="$REPO_ROOT/.cache"       # installed tooling (gitignored)
STATE_DIR="$REPO_ROOT/.dev"         # run state: pids, logs, secrets (gitignored)
RUN_DIR="$STATE_DIR/run"
LOG_DIR="$STATE_DIR/logs"
SECRETS_FILE="$STATE_DIR/secrets.env"
VENV_DIR="$CACHE_DIR/venv"
TANSU_LINK="$CACHE_DIR/bin/tansu"   # symlink made by setup.sh
EMULATOR_DIR="$REPO_ROOT/infra/firestore-emulator"
KAFKA_SH="$REPO_ROOT/infra/kafka/kafka.sh" # Apache Kafka clusters for dev and tests

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Milliseconds since the epoch.
now_ms() {
  local us="${EPOCHREALTIME//[!0-9]/}"
  echo $((us / 1000))
}

# Seconds since a now_ms timestamp, one decimal.
since() {
  local ms=$(($(now_ms) - $1))
  printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}

# True when something accepts TCP connections on 127.0.0.1:$1.
# shellcheck disable=SC2016 # $1 is expanded by the inner bash
port_open() { timeout 2 bash -c ': >"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

# Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat); empty if gone.
proc_starttime() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  stat="${stat##*) }"
  # shellcheck disable=SC2086 # split on purpose
  set -- $stat
  [[ "$1" == Z ]] || echo "${20}"
}

# Records that $2 is the pid of $1 (a name such as `broker` or `kafka-dev-node1`): writes
# $RUN_DIR/$1.pid as "pid starttime", so a recycled pid is never mistaken for ours.
write_pid() {
  mkdir -p "$RUN_DIR"
  printf '%s %s\n' "$2" "$(proc_starttime "$2")" >"$RUN_DIR/$1.pid"
}

# Prints the pid of $1's process if one of our scripts started it (write_pid) and it still runs.
our_pid() {
  local file="$RUN_DIR/$1.pid" pid start
  [[ -f "$file" ]] || return 1
  read -r pid start <"$file" || return 1
  [[ -n "$pid" && -n "$start" && "$(proc_starttime "$pid")" == "$start" ]] || return 1
  echo "$pid"
}

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root for: $* (no sudo available)"
  fi
}

apt_is_installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

# Installs the Debian packages that are missing; no apt-get at all when none is.
apt_ensure() {
  local missing=() pkg
  for pkg in "$@"; do
    apt_is_installed "$pkg" || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing Debian packages: ${missing[*]}"
  # Explicit returns: callers may run this where `set -e` is suspended (`apt_ensure ... || x`).
  as_root apt-get update -qq || return 1
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || return 1
}

# Loads infra/dev/ports.env; a variable already set in the environment wins.
load_ports() {
  local line key value
  while IFS= read -r line || [[ -n "$line" ]]; do
    [[ "$line" =~ ^[[:space:]]*([A-Z][A-Z0-9_]*)=([0-9]+)[[:space:]]*$ ]] || continue
    key="${BASH_REMATCH[1]}" value="${BASH_REMATCH[2]}"
    if [[ -z "${!key:-}" ]]; then
      printf -v "$key" '%s' "$value"
    fi
    if ! [[ "${!key}" =~ ^[1-9][0-9]*$ ]] || ((${!key} > 65535)); then
      die "$key='${!key}' is not a valid port"
    fi
    export "${key?}"
  done <"$DEV_DIR/ports.env"
}

# sha256 of the given files' contents plus any extra words (e.g. a tool version).
fingerprint() {
  local files=() extra=()
  while (($#)); do
    if [[ -f "$1" ]]; then files+=("$1"); else extra+=("$1"); fi
    shift
  done
  { cat "${files[@]}"; printf '%s\n' "${extra[@]}"; } | sha256sum | cut -d' ' -f1
}

# Starts a Firestore emulator of the caller's own on a free port (not the dev stack's) and
# exports FIRESTORE_EMULATOR_HOST; stop it with stop_private_emulator (e.g. in an EXIT trap).
start_private_emulator() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$LOG_DIR"
  node "$EMULATOR_DIR/launcher.mjs" --port "$port" >"$LOG_DIR/private-emulator-$port.log" 2>&1 &
  PRIVATE_EMULATOR_PID=$!
  for _ in $(seq 100); do
    # shellcheck disable=SC2016 # $1 is the inner shell's argument
    timeout 1 bash -c ': >"/dev/tcp/127.0.0.1/$1"' _ "$port" 2>/dev/null && break
    sleep 0.1
  done
  export FIRESTORE_EMULATOR_HOST="127.0.0.1:$port"
}

stop_private_emulator() {
  if [[ -n "${PRIVATE_EMULATOR_PID:-}" ]]; then
    kill "$PRIVATE_EMULATOR_PID" 2>/dev/null || true
  fi
}

# Starts a fresh Apache Kafka cluster of the caller's own (kafka.sh start NAME --fresh: any
# earlier cluster NAME and its data are discarded) with NODES (default 1) nodes from PORT on, waits
# until every node is ready, and exports for the tests:
#   BRAIN_TEST_KAFKA_BROKERS  the bootstrap list (127.0.0.1:PORT,127.0.0.1:PORT+2,...)
#   BRAIN_TEST_KAFKA_CLUSTER  NAME, for `infra/kafka/kafka.sh kill|start-node|elect-leaders NAME`
#   BRAIN_TEST_KAFKA_NODES    NODES
# Stop it with stop_test_kafka (e.g. in an EXIT trap); its data stays in .dev/kafka/NAME until
# the next start_test_kafka NAME.
start_test_kafka() {
  local name="$1" port="$2" nodes="${3:-1}" brokers
  TEST_KAFKA_STARTED="$name" # set first: stop_test_kafka also stops a cluster that failed to start
  brokers="$(bash "$KAFKA_SH" start "$name" --port "$port" --nodes "$nodes" --fresh)" \
    || die "the tests' Kafka cluster '$name' did not start (logs: ${LOG_DIR#"$REPO_ROOT"/}/kafka-$name-node<k>.log)"
  export BRAIN_TEST_KAFKA_BROKERS="$brokers" BRAIN_TEST_KAFKA_CLUSTER="$name" BRAIN_TEST_KAFKA_NODES="$nodes"
}

stop_test_kafka() {
  if [[ -n "${TEST_KAFKA_STARTED:-}" ]]; then
    bash "$KAFKA_SH" stop "$TEST_KAFKA_STARTED" || true
  fi
}

# Creates the virtualenv $2 from the requirements file $3, or leaves it as it is when neither the
# requirements nor the Python version changed since (stamp `$CACHE_DIR/stamps/$1`).
ensure_venv() {
  local name=$1 dir=$2 requirements=$3 stamps="$CACHE_DIR/stamps" key
  key="$(fingerprint "$requirements" "$(python3 -c 'import sys; print(sys.version)')")"
  mkdir -p "$stamps"
  if [[ -x "$dir/bin/python" && "$(cat "$stamps/$name" 2>/dev/null)" == "$key" ]]; then
    log "$name: up to date ($dir)"
    return 0
  fi
  log "$name: creating $dir from ${requirements#"$REPO_ROOT"/}"
  rm -rf "${dir:?}" "${stamps:?}/${name:?}"
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  printf '%s\n' "$key" >"$stamps/$name"
}
