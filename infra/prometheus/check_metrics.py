#!/usr/bin/env python3
"""Checks that every metric the alert rules and the Grafana dashboards use is exposed by Brain.

    check_metrics.py SCRAPE_DIR

SCRAPE_DIR holds one `<service>.prom` per service: its /metrics, scraped. Each file is parsed
with the Prometheus text-format parser of the official Python client (a malformed exposition
fails). The metric names are taken from the expressions of infra/prometheus/alerts.yml and of
infra/compose/grafana/dashboards/*.json: plain selectors (`api_gateway_dead_letters`) must be
exposed by at least one service, name patterns (`{__name__=~".+_breaker_state"}`) must match a
metric of at least one service. Recording rules' own names and Prometheus's (`up`, `ALERTS`)
are not ours to expose. Prints what it found; exits 1 when a name is missing.
"""

import glob
import json
import os
import re
import sys

import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RULES = os.path.join(ROOT, "infra/prometheus/alerts.yml")
DASHBOARDS = os.path.join(ROOT, "infra/compose/grafana/dashboards")
PROMETHEUS_OWN = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "inf", "nan"}


def expressions():
    """(where, expr) of every rule and dashboard query; and the recording rules' names."""
    out, records = [], set()
    with open(RULES) as f:
        rules = yaml.safe_load(f)
    for group in rules["groups"]:
        for rule in group["rules"]:
            out.append((f"alerts.yml {rule.get('alert') or rule.get('record')}", rule["expr"]))
            if "record" in rule:
                records.add(rule["record"])
    for path in sorted(glob.glob(os.path.join(DASHBOARDS, "*.json"))):
        with open(path) as f:
            stack = [json.load(f)]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "expr" and isinstance(value, str):
                        out.append((os.path.basename(path), value))
                    else:
                        stack.append(value)
            elif isinstance(node, list):
                stack.extend(node)
    return out, records


def used(expr):
    """The metric names and `__name__` patterns an expression selects."""
    patterns = set(re.findall(r'__name__\s*=~\s*"([^"]+)"', expr))
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = text.replace("$__rate_interval", "")
    names = set()
    for match in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name in KEYWORDS or re.fullmatch(r"\d.*", name):
            continue
        names.add(name)
    return names, patterns


def exposed(scrape_dir):
    """{service: set of sample names} from the scraped files."""
    out = {}
    for path in sorted(glob.glob(os.path.join(scrape_dir, "*.prom"))):
        service = os.path.basename(path)[: -len(".prom")]
        with open(path) as f:
            text = f.read()
        names = set()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                names.add(sample.name)
        out[service] = names
    return out


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    services = exposed(sys.argv[1])
    if not services:
        print(f"no *.prom files in {sys.argv[1]}")
        return 1
    exprs, records = expressions()
    wanted_names, wanted_patterns = {}, {}
    for where, expr in exprs:
        names, patterns = used(expr)
        for n in names - records - PROMETHEUS_OWN:
            wanted_names.setdefault(n, where)
        for p in patterns:
            wanted_patterns.setdefault(p, where)
    missing = 0
    print(f"{len(exprs)} expressions; {sum(len(v) for v in services.values())} series names scraped from {len(services)} services")
    for name, where in sorted(wanted_names.items()):
        by = sorted(s for s, names in services.items() if name in names)
        print(f"{'ok  ' if by else 'MISSING'} {name} ({where}): {', '.join(by) or 'no service'}")
        missing += not by
    for pattern, where in sorted(wanted_patterns.items()):
        regex = re.compile(pattern)
        by = sorted(s for s, names in services.items() if any(regex.fullmatch(n) for n in names))
        print(f"{'ok  ' if by else 'MISSING'} {{__name__=~\"{pattern}\"}} ({where}): {', '.join(by) or 'no service'}")
        missing += not by
    print(f"{len(wanted_names) + len(wanted_patterns) - missing} of {len(wanted_names) + len(wanted_patterns)} metric names the rules and dashboards use are exposed")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
