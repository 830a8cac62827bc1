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

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

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
