#!/usr/bin/env bash
# The Prometheus and Grafana pieces, checked offline:
#   - deploy/prometheus/rules.yaml passes `promtool check rules`, and its unit tests
#     (deploy/prometheus/rules.test.yaml: each alert fires on its scenario and stays quiet on
#     the near miss) pass `promtool test rules`;
#   - the Helm chart's copy (helm/referrers-sidecar/files/prometheus-rules.yaml) is identical;
#   - deploy/grafana/referrers-sidecar.json is valid JSON, and every query in it is valid PromQL
#     (its expressions, Grafana variables replaced, as recording rules for promtool).
# That every metric both files name is exported by the running binary is checked by
# tests/deployment/observability.rs (cargo test -p e2e --test deployment observability).
#
#   scripts/check-observability.sh   (make observability-check; part of make test)
set -Eeuo pipefail
cd "$(dirname "$0")/.."

TOOLS="${REFERRERS_SIDECAR_TOOLS:-$HOME/.cache/referrers-sidecar/tools}"
export PATH="$TOOLS/bin:$PATH"
RULES=deploy/prometheus/rules.yaml
CHART_RULES=helm/referrers-sidecar/files/prometheus-rules.yaml
DASHBOARD=deploy/grafana/referrers-sidecar.json

command -v promtool >/dev/null || { echo "check-observability: promtool missing: run make setup" >&2; exit 1; }

echo "==> promtool check rules $RULES"
promtool check rules "$RULES"
echo "==> promtool test rules deploy/prometheus/rules.test.yaml"
promtool test rules deploy/prometheus/rules.test.yaml
echo "==> $CHART_RULES is a copy of $RULES"
if ! cmp -s "$RULES" "$CHART_RULES"; then
  diff -u "$RULES" "$CHART_RULES" || true
  echo "check-observability: the chart's copy differs: cp $RULES $CHART_RULES" >&2
  exit 1
fi
echo "==> $DASHBOARD: JSON, and every expr parses as PromQL"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/check-observability.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
python3 - "$DASHBOARD" "$WORK/dashboard-rules.yaml" <<'PY'
import json, re, sys
source, out = sys.argv[1], sys.argv[2]
with open(source) as f:
    dashboard = json.load(f)
def panels(items):
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))
rules = []
for panel in panels(dashboard["panels"]):
    for target in panel.get("targets", []):
        expr = target["expr"]
        expr = expr.replace("$__rate_interval", "5m")
        expr = re.sub(r"\$\{?[A-Za-z_]+\}?", ".*", expr)
        rules.append({"record": f"dashboard:panel{panel['id']}_{target['refId']}", "expr": expr})
if not rules:
    sys.exit("no queries found in the dashboard")
with open(out, "w") as f:
    json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, f, indent=1)
print(f"    {len(rules)} queries")
PY
promtool check rules "$WORK/dashboard-rules.yaml"
echo "check-observability: all checks passed"
