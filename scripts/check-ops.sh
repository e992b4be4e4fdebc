#!/usr/bin/env bash
# Static checks of the ops stack (no Docker engine needed):
#   docker-compose.yml   docker-compose 1.29 `config -q` and the Compose Spec JSON schema
#   ops/prometheus       promtool check config / check rules
#   ops/alertmanager     amtool check-config
#   ops/grafana          every JSON file parses; the dashboard has panels with PromQL
#   otel-collector.yaml  parses as YAML with the pipelines' components declared
# Installs what is missing: Debian docker-compose, prometheus, prometheus-alertmanager
# (apt-get), check-jsonschema (PyPI, into ~/.cache/llmtel/ops-venv).
# The PromQL of the dashboard and rules is run against a real Prometheus by the test
# examples/axum-service/tests/prometheus_reads_back_what_the_service_spent.rs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${LLMTEL_OPS_VENV:-$HOME/.cache/llmtel/ops-venv}"
fail=0
ok() { printf 'check-ops: ok: %s\n' "$*"; }
bad() { printf 'check-ops: FAIL: %s\n' "$*" >&2; fail=1; }

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "$@" >/dev/null \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "$@" >/dev/null; }
}
need() { # need COMMAND DEBIAN_PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    printf 'check-ops: installing %s (apt)\n' "$2"
    apt_install "$2" || { printf 'check-ops: cannot install %s\n' "$2" >&2; exit 1; }
}
need docker-compose docker-compose
need promtool prometheus
need amtool prometheus-alertmanager

if [[ ! -x "$VENV/bin/check-jsonschema" ]]; then
    printf 'check-ops: installing check-jsonschema into %s\n' "$VENV"
    python3 -m venv "$VENV" || { rm -rf "$VENV"; python3 -m virtualenv "$VENV"; }
    "$VENV/bin/pip" install --disable-pip-version-check --quiet check-jsonschema
fi

# docker-compose.yml
if docker-compose -f docker-compose.yml config -q; then ok "docker-compose config -q"; else bad "docker-compose config -q"; fi
if "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml; then
    ok "docker-compose.yml against the Compose Spec schema"
else
    bad "docker-compose.yml against the Compose Spec schema"
fi

# Prometheus and Alertmanager
if promtool check config ops/prometheus/prometheus.yml; then ok "promtool check config"; else bad "promtool check config"; fi
if promtool check rules ops/prometheus/rules/*.yml; then ok "promtool check rules"; else bad "promtool check rules"; fi
if amtool check-config ops/alertmanager/alertmanager.yml; then ok "amtool check-config"; else bad "amtool check-config"; fi

# Grafana provisioning and dashboards; the collector config.
"$VENV/bin/python" -c "import yaml" 2>/dev/null \
    || "$VENV/bin/pip" install --disable-pip-version-check --quiet pyyaml
if "$VENV/bin/python" - <<'PY'
import json, pathlib, sys, yaml
errors = []
dashboards = sorted(pathlib.Path("ops/grafana/dashboards").glob("*.json"))
if not dashboards:
    errors.append("no dashboard in ops/grafana/dashboards")
for p in dashboards:
    try:
        d = json.loads(p.read_text())
    except Exception as e:
        errors.append(f"{p}: {e}"); continue
    exprs = []
    def walk(v):
        if isinstance(v, dict):
            for k, x in v.items():
                if k == "expr" and isinstance(x, str): exprs.append(x)
                else: walk(x)
        elif isinstance(v, list):
            for x in v: walk(x)
    walk(d)
    if not d.get("title") or not d.get("panels") or not exprs:
        errors.append(f"{p}: no title, panels or PromQL")
    ids = [x["id"] for x in d["panels"]]
    if len(ids) != len(set(ids)):
        errors.append(f"{p}: duplicate panel ids")
    print(f"check-ops: {p}: {len(d['panels'])} panels, {len(exprs)} PromQL expressions")
for p in sorted(pathlib.Path("ops/grafana/provisioning").rglob("*.yml")) + [pathlib.Path("ops/tempo/tempo.yaml")]:
    try: yaml.safe_load(p.read_text())
    except Exception as e: errors.append(f"{p}: {e}")
c = yaml.safe_load(pathlib.Path("otel-collector.yaml").read_text())
for name, pl in c["service"]["pipelines"].items():
    for kind in ("receivers", "processors", "exporters"):
        for comp in pl.get(kind, []):
            if comp not in (c.get(kind) or {}):
                errors.append(f"otel-collector.yaml: pipeline {name} uses undeclared {kind[:-1]} {comp}")
tp = c["processors"]["tail_sampling"]["policies"]
if not any(p["type"] == "status_code" for p in tp) or not any(p["type"] == "ottl_condition" and any('attributes["gen_ai.usage.cost"] >=' in c for c in p["ottl_condition"].get("span", [])) for p in tp):
    errors.append("otel-collector.yaml: tail sampling must keep errors and expensive calls (an ottl_condition on gen_ai.usage.cost)")
# numeric_attribute compares int64 bounds against integer attributes: a double such as the cost
# reads as 0, and a fractional bound is truncated, so such a policy would keep every trace.
for p in tp:
    na = p.get("numeric_attribute")
    if na and (na.get("key", "").startswith("gen_ai.usage.cost") or any(isinstance(na.get(b), float) for b in ("min_value", "max_value"))):
        errors.append(f"otel-collector.yaml: policy {p['name']}: numeric_attribute compares whole numbers only; use ottl_condition for {na.get('key')}")
for e in errors: print("check-ops: " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY
then ok "Grafana dashboards and provisioning, Tempo and collector configs"; else bad "Grafana/Tempo/collector configs"; fi

if ((fail)); then
    echo "check-ops: FAILED" >&2
    exit 1
fi
echo "check-ops: all ops checks passed"
