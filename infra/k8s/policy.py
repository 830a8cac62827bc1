"""Policy checks on one rendered overlay (`kustomize build` output), run by infra/dev/check-k8s.sh:

    python policy.py RENDERED.yaml

Prints one `ok    ...` or `FAIL  ...` line per check (problems indented below it) and exits 1 when
any check fails. What kubeconform's schemas cannot say is checked here: probes, sizing, non-root,
secrets only by reference, disruption budgets, and the scaling rules of docs/deploy.md.

The consumer groups a lag-scaled service runs are read from its code (`ConsumerConfig::from_env` /
`ConsumerConfig::new` in services/<service>/src/, topic constants from
shared/events/src/topics.rs), so a group added there without a KEDA trigger fails the check.
"""

import re
import sys
from pathlib import Path

import yaml

# Services that must run as exactly one instance (why: the header of each base/<service>.yaml
# and docs/deploy.md#which-services-scale).
SINGLE_INSTANCE = {
    "firestore-change-listener": "one Listen stream and checkpoint per target",
    "qbo-mirror": "in-process scheduler and per-realm rate limits",
    "graph-calendar": "unleased availability refresh and subscription upkeep",
    "dlq-replayer": "one replay at a time, progress in the process",
}
# Services scaled on consumer lag (KEDA), with one kafka trigger per consumer group they run.
LAG_SCALED = ("projection-writer", "sharefile-sync", "ventures-sync")
CPU_SCALED = {"api-gateway"}
BRAIN_SERVICES = set(SINGLE_INSTANCE) | set(LAG_SCALED) | CPU_SCALED
# Where a secret would go. Names of places (..._URL, ..._ADDR) are not secrets.
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|VERIFIER|CLIENT_STATE|_CLIENT$|_CLIENT_ID$|USERNAME$|_KEY$)")
NOT_SECRET = re.compile(r"_(URL|ADDR)$")
CREDENTIALS_IN_URL = re.compile(r"://[^/@\s:]+:[^/@\s]+@")
PUBLIC_PATHS = {"/api", "/ops"}

REPO = Path(__file__).resolve().parents[2]
results = []


def consumer_groups(service):
    """{group: topic} of every consumer the service's code configures, with the default group
    names (`<SERVICE>__..._GROUP_ID` unset), or an empty dict when the code reads otherwise."""
    topics = dict(re.findall(r'pub const ([A-Z_]+): &str = "([^"]+)"',
                             (REPO / "shared/events/src/topics.rs").read_text()))
    groups = {}
    for source in sorted((REPO / "services" / service / "src").rglob("*.rs")):
        code = source.read_text()
        calls = re.findall(r"ConsumerConfig::from_env\(\s*&env,\s*SERVICE,\s*(.+?),\s*&\[([^\]]*)\]\s*\)", code, re.S)
        calls += re.findall(r"ConsumerConfig::new\(\s*SERVICE,\s*(.+?),\s*&\[([^\]]*)\]\s*\)", code, re.S)
        for expr, topic_list in calls:
            expr = " ".join(expr.split())
            # group_id.clone() / format!("{group_id}.x"): GROUP_ID, default SERVICE;
            # env.or("X_GROUP_ID", format!("{SERVICE}.x"))?: default <service>.x; "literal".
            if m := re.fullmatch(r'"([^"]+)"', expr):
                group = m.group(1)
            elif m := re.search(r'format!\("\{(?:SERVICE|group_id)\}([^"]*)"\)', expr):
                group = service + m.group(1)
            elif expr == "group_id.clone()":
                group = service
            else:
                return {}
            names = re.findall(r"topics::([A-Z_]+)", topic_list)
            if len(names) != 1 or names[0] not in topics:
                return {}
            groups[group] = topics[names[0]]
    return groups


def check(name, problems):
    results.append((name, problems))


def secret_like(key):
    return bool(SECRET_NAME.search(key)) and not NOT_SECRET.search(key)


def quantity(value):
    """A CPU or memory quantity as a float (cores or bytes)."""
    value = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    for unit, factor in units.items():
        if value.endswith(unit):
            return float(value[: -len(unit)]) * factor
    return float(value)


docs = [d for d in yaml.safe_load_all(Path(sys.argv[1]).read_text()) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)
deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
config_maps = {d["metadata"]["name"]: d.get("data") or {} for d in by_kind.get("ConfigMap", [])}
shared = next((data for name, data in config_maps.items() if name.startswith("brain-config")), {})


def containers(deployment):
    return deployment["spec"]["template"]["spec"]["containers"]


# --- every Brain service has its Deployment ------------------------------------------------------
check(f"one Deployment per service ({len(BRAIN_SERVICES)})",
      [f"{s}: no Deployment" for s in sorted(BRAIN_SERVICES - set(deployments))]
      + [f"{d}: not a known Brain service" for d in sorted(set(deployments) - BRAIN_SERVICES)])

# --- probes --------------------------------------------------------------------------------------
problems = []
for name, d in deployments.items():
    for c in containers(d):
        ports = {p.get("name") for p in c.get("ports") or []} | {p["containerPort"] for p in c.get("ports") or []}
        for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
            get = (c.get(probe) or {}).get("httpGet") or {}
            if get.get("path") != path:
                problems.append(f"{name}/{c['name']}: {probe} is not an HTTP GET of {path}")
            elif get.get("port") not in ports:
                problems.append(f"{name}/{c['name']}: {probe} port {get.get('port')!r} is not a container port")
check("probes: readiness on /ready, liveness on /health, on a declared port", problems)

# --- requests and limits -------------------------------------------------------------------------
problems = []
for name, d in deployments.items():
    for c in containers(d):
        res = c.get("resources") or {}
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in (res.get(kind) or {}):
                    problems.append(f"{name}/{c['name']}: no {kind}.{r}")
        for r in ("cpu", "memory"):
            try:
                if quantity(res["requests"][r]) > quantity(res["limits"][r]):
                    problems.append(f"{name}/{c['name']}: {r} request above its limit")
            except (KeyError, TypeError, ValueError):
                pass
check("resources: cpu and memory requests and limits on every container, requests <= limits", problems)

# --- non-root ------------------------------------------------------------------------------------
problems = []
for name, d in deployments.items():
    pod = d["spec"]["template"]["spec"].get("securityContext") or {}
    for c in containers(d):
        sc = c.get("securityContext") or {}
        if not sc.get("runAsNonRoot", pod.get("runAsNonRoot")):
            problems.append(f"{name}/{c['name']}: runAsNonRoot is not true")
        if sc.get("runAsUser", pod.get("runAsUser")) == 0:
            problems.append(f"{name}/{c['name']}: runs as uid 0")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}/{c['name']}: allowPrivilegeEscalation is not false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{name}/{c['name']}: capabilities not all dropped")
check("security: runAsNonRoot, no privilege escalation, capabilities dropped", problems)

# --- secrets by reference only -------------------------------------------------------------------
problems = []
for name, d in deployments.items():
    for c in containers(d):
        for e in c.get("env") or []:
            key, value_from = e["name"], e.get("valueFrom") or {}
            if "value" in e and (secret_like(key) or CREDENTIALS_IN_URL.search(str(e["value"]))):
                problems.append(f"{name}: env {key} has a literal value; use secretKeyRef")
            if secret_like(key) and "value" not in e and "secretKeyRef" not in value_from:
                problems.append(f"{name}: env {key} does not come from a Secret")
        for source in c.get("envFrom") or []:
            ref = source.get("configMapRef")
            if ref and ref["name"] not in config_maps:
                problems.append(f"{name}: envFrom ConfigMap {ref['name']} is not in the build")
for cm, data in config_maps.items():
    for key, value in data.items():
        if secret_like(key):
            problems.append(f"ConfigMap {cm}: {key} looks like a secret")
        if CREDENTIALS_IN_URL.search(str(value)):
            problems.append(f"ConfigMap {cm}: {key} carries credentials in a URL")
problems += [f"Secret {s['metadata']['name']} is in the manifests" for s in by_kind.get("Secret", [])]
check("secrets: only secretKeyRef, no literal values, no Secret objects, no credentials in ConfigMaps", problems)

# --- disruption budgets --------------------------------------------------------------------------
problems = []
pdbs = by_kind.get("PodDisruptionBudget", [])
for name, d in deployments.items():
    labels = d["spec"]["template"]["metadata"].get("labels") or {}
    covering = [p for p in pdbs if (p["spec"].get("selector") or {}).get("matchLabels")
                and p["spec"]["selector"]["matchLabels"].items() <= labels.items()]
    if len(covering) != 1:
        problems.append(f"{name}: {len(covering)} PodDisruptionBudgets select it (want 1)")
    elif name in SINGLE_INSTANCE and covering[0]["spec"].get("minAvailable") not in (None, 0):
        problems.append(f"{name}: minAvailable on a single instance blocks every drain")
check("disruption budgets: exactly one per Deployment, none that blocks a drain forever", problems)

# --- services select pods ------------------------------------------------------------------------
problems = []
for s in by_kind.get("Service", []):
    selector = s["spec"].get("selector") or {}
    targets = [d for d in deployments.values()
               if selector and selector.items() <= (d["spec"]["template"]["metadata"].get("labels") or {}).items()]
    if not targets:
        problems.append(f"Service {s['metadata']['name']}: selects no Deployment")
        continue
    names = {p.get("name") for c in containers(targets[0]) for p in c.get("ports") or []}
    for port in s["spec"].get("ports") or []:
        if isinstance(port.get("targetPort"), str) and port["targetPort"] not in names:
            problems.append(f"Service {s['metadata']['name']}: targetPort {port['targetPort']} is no container port")
check("services: every Service selects a Deployment and names its ports", problems)

# --- scaling -------------------------------------------------------------------------------------
partitions = int(shared.get("BRAIN__TOPIC_PARTITIONS", "6"))
prefix = shared.get("BRAIN__KAFKA_NAMESPACE", "")
if prefix and not prefix.endswith((".", "_", "-")):
    prefix += "."
scaled_objects = {so["spec"]["scaleTargetRef"]["name"]: so for so in by_kind.get("ScaledObject", [])}
hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in by_kind.get("HorizontalPodAutoscaler", [])}
trigger_auths = {a["metadata"]["name"] for a in by_kind.get("TriggerAuthentication", [])}

problems = []
for name, why in SINGLE_INSTANCE.items():
    d = deployments.get(name)
    if d is None:
        continue
    if d["spec"].get("replicas") != 1:
        problems.append(f"{name}: replicas {d['spec'].get('replicas')!r}, must be 1 ({why})")
    if (d["spec"].get("strategy") or {}).get("type") != "Recreate":
        problems.append(f"{name}: strategy must be Recreate, never two at once ({why})")
    if name in scaled_objects or name in hpas:
        problems.append(f"{name}: autoscaled, but must stay single ({why})")
check(f"single instance: {', '.join(SINGLE_INSTANCE)} at replicas 1, Recreate, not autoscaled", problems)

problems = []
for name in LAG_SCALED:
    groups = consumer_groups(name)
    if not groups:
        problems.append(f"{name}: could not read its consumer groups from services/{name}/src "
                        "(ConsumerConfig calls changed shape? update consumer_groups in infra/k8s/policy.py)")
        continue
    so = scaled_objects.get(name)
    if so is None:
        problems.append(f"{name}: no ScaledObject")
        continue
    spec = so["spec"]
    low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    if not 1 <= low <= high <= partitions:
        problems.append(f"{name}: replicas {low}-{high}, want 1 <= min <= max <= {partitions} partitions")
    if deployments.get(name, {}).get("spec", {}).get("replicas") is not None:
        problems.append(f"{name}: the Deployment sets replicas, which fights the autoscaler")
    seen = {}
    for t in spec.get("triggers") or []:
        meta = t.get("metadata") or {}
        if t.get("type") != "kafka":
            problems.append(f"{name}: trigger {t.get('name')} is {t.get('type')}, not kafka")
            continue
        group, topic = meta.get("consumerGroup"), meta.get("topic")
        expected = {prefix + g: prefix + tp for g, tp in groups.items()}
        if group not in expected:
            problems.append(f"{name}: consumerGroup {group!r} is not one the service runs ({', '.join(sorted(expected))})")
        elif topic != expected[group]:
            problems.append(f"{name}: group {group} reads {expected[group]}, not {topic!r}")
        seen[group] = True
        if not str(meta.get("lagThreshold", "")).isdigit() or int(meta["lagThreshold"]) < 1:
            problems.append(f"{name}: {group}: lagThreshold {meta.get('lagThreshold')!r} is not a positive integer")
        env_var = meta.get("bootstrapServersFromEnv")
        if env_var and env_var not in shared:
            problems.append(f"{name}: bootstrapServersFromEnv {env_var} is not in brain-config")
        if not env_var and not meta.get("bootstrapServers"):
            problems.append(f"{name}: {group}: no bootstrap servers")
        if (t.get("authenticationRef") or {}).get("name") not in trigger_auths:
            problems.append(f"{name}: {group}: authenticationRef names no TriggerAuthentication of the build")
        if meta.get("offsetResetPolicy") != "earliest":
            problems.append(f"{name}: {group}: offsetResetPolicy must be earliest (the services start new groups there)")
    for group, topic in groups.items():
        if prefix + group not in seen:
            problems.append(f"{name}: no lag trigger for its group {prefix + group} (topic {prefix + topic})")
check(f"lag scaling: {', '.join(LAG_SCALED)} on every consumer group they run, max <= {partitions} partitions", problems)

problems = []
for name in CPU_SCALED:
    h = hpas.get(name)
    if h is None:
        problems.append(f"{name}: no HorizontalPodAutoscaler")
        continue
    metrics = [m for m in h["spec"].get("metrics") or [] if m.get("type") == "Resource"
               and m["resource"]["name"] == "cpu"]
    if not metrics:
        problems.append(f"{name}: the HPA does not scale on CPU")
    if not 1 <= h["spec"].get("minReplicas", 1) <= h["spec"]["maxReplicas"]:
        problems.append(f"{name}: minReplicas/maxReplicas out of order")
    if deployments.get(name, {}).get("spec", {}).get("replicas") is not None:
        problems.append(f"{name}: the Deployment sets replicas, which fights the HPA")
check(f"cpu scaling: {', '.join(CPU_SCALED)} by a HorizontalPodAutoscaler on CPU", problems)

# --- exposure ------------------------------------------------------------------------------------
problems = []
for ing in by_kind.get("Ingress", []):
    for rule in ing["spec"].get("rules") or []:
        for p in (rule.get("http") or {}).get("paths") or []:
            backend = p["backend"]["service"]["name"]
            if backend != "api-gateway" or p["path"] not in PUBLIC_PATHS:
                problems.append(f"Ingress {ing['metadata']['name']}: {p['path']} -> {backend} (only /api, /ops of the gateway)")
check("exposure: the Ingress routes only /api and /ops to the gateway (no /metrics, /ready)", problems)

# --- images --------------------------------------------------------------------------------------
problems = []
for name, d in deployments.items():
    for c in containers(d):
        image = c["image"]
        if "@sha256:" not in image and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
            problems.append(f"{name}: image {image} is neither a tag (not latest) nor a digest")
check("images: pinned by tag or digest", problems)

failed = 0
for name, problems in results:
    print(("ok    " if not problems else "FAIL  ") + name)
    for p in problems:
        print("      | " + p)
    failed += bool(problems)
sys.exit(1 if failed else 0)
