#!/usr/bin/env bash
# The Helm chart, checked offline: `helm lint --strict` and `helm template` for the default
# values and every helm/referrers-sidecar/ci/*.yaml; every rendered manifest validated against
# the Kubernetes JSON schemas shipped with kubernetes-validate; the configuration
# scripts/render-config.sh prints (the ConfigMap's, secret paths at placeholders) accepted by
# `referrers-sidecar check-config`; NOTES.txt rendered by a client-side install; a
# PrometheusRule carries exactly deploy/prometheus/rules.yaml; one scrape per pod beside
# harbor-helm's ServiceMonitor; each routing mode's route ranks above harbor-helm's own Ingress or
# HTTPRoute where it should (scripts/lib/route_order.py), the operator API routed only when
# asked; the bundled-nginx post-renderer run on harbor-helm's nginx ConfigMaps, its output
# accepted by `nginx -t` and serving a live request matrix (harbor-nginx/check.sh); the
# docker-compose add-on's configuration accepted by check-config.
#
#   scripts/check-helm.sh            (make helm-check; part of make test)
#
# A values file may say, in a line of its own, `# kube-min: 1.30.0` when it uses a field
# older Kubernetes versions lack; the default is the chart's minimum, 1.25.0.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

TOOLS="${REFERRERS_SIDECAR_TOOLS:-$HOME/.cache/referrers-sidecar/tools}"
export PATH="$TOOLS/bin:$PATH"
PY="$TOOLS/venv/bin/python"
CHART=helm/referrers-sidecar
KUBE_MIN_DEFAULT=1.25.0
KUBE_LATEST=1.37.0
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET_DIR/debug/referrers-sidecar"

for tool in helm helm3 nginx "$PY"; do
  command -v "$tool" >/dev/null || { echo "check-helm: $tool missing: run make setup" >&2; exit 1; }
done
echo "==> cargo build -p referrers-sidecar (for check-config)"
cargo build -q -p referrers-sidecar
[[ -x "$BIN" ]] || { echo "check-helm: $BIN missing after the build" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/check-helm.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Validates every document of a rendered stream; prints one line per object.
cat >"$WORK/validate.py" <<'PY'
import sys
import yaml
from kubernetes_validate import utils

# Custom resources: kubernetes-validate ships only the built-in kinds. These are checked for
# the fields the chart must set, and named as skipped for full schema validation.
CRD_REQUIRED = {
    ("monitoring.coreos.com", "ServiceMonitor"): ["spec.selector", "spec.endpoints"],
    ("gateway.networking.k8s.io", "HTTPRoute"): ["spec.parentRefs", "spec.rules"],
    ("traefik.io", "IngressRoute"): ["spec.routes", "spec.entryPoints"],
    ("monitoring.coreos.com", "PrometheusRule"): ["spec.groups"],
}
# The PrometheusRule must carry exactly the rules of deploy/prometheus/rules.yaml (which
# scripts/check-observability.sh checks with promtool).
RULES_FILE = "deploy/prometheus/rules.yaml"

def dig(obj, path):
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj

source, versions = sys.argv[1], sys.argv[2].split(",")
failed = 0
with open(source) as f:
    docs = [d for d in yaml.safe_load_all(f) if d]
for doc in docs:
    kind, api = doc.get("kind"), doc.get("apiVersion", "")
    name = f"{kind}/{dig(doc, 'metadata.name')}"
    group = api.split("/")[0] if "/" in api else ""
    if (group, kind) in CRD_REQUIRED:
        missing = [p for p in CRD_REQUIRED[(group, kind)] if not dig(doc, p)]
        if missing:
            print(f"    FAIL {name}: missing {', '.join(missing)}")
            failed += 1
        elif kind == "PrometheusRule" and doc["spec"] != yaml.safe_load(open(RULES_FILE)):
            print(f"    FAIL {name}: spec differs from {RULES_FILE}")
            failed += 1
        else:
            print(f"    note {name}: {api} is a custom resource, schema not shipped: required fields checked only")
        continue
    errors = []
    for version in versions:
        try:
            utils.validate(doc, version, strict=True)
        except utils.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            errors.append(f"against Kubernetes {version}: {path}: {e.message}")
        except utils.SchemaNotFoundError as e:
            errors.append(f"{e.message} (unknown kind: add it to check-helm.sh)")
    for error in errors:
        print(f"    FAIL {name} {error}")
    if errors:
        failed += 1
    else:
        print(f"    ok   {name} (Kubernetes {', '.join(versions)})")
sys.exit(1 if failed else 0)
PY

# scripts/render-config.sh (what the docs give operators) must print exactly the config.yaml of
# the rendered ConfigMap, with only the *_file paths moved under its placeholder folder, and
# each such file must exist.
cat >"$WORK/same_config.py" <<'PY'
import os, sys
import yaml

rendered, printed, root = sys.argv[1], sys.argv[2], sys.argv[3]
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
configs = [d for d in docs if d.get("kind") == "ConfigMap" and "config.yaml" in d.get("data", {})]
if len(configs) != 1:
    sys.exit(f"expected one ConfigMap with config.yaml, found {len(configs)}")
expected = yaml.safe_load(configs[0]["data"]["config.yaml"])
got = yaml.safe_load(open(printed))
def walk(want, have, where):
    if isinstance(want, dict) and isinstance(have, dict) and want.keys() == have.keys():
        for key in want:
            walk(want[key], have[key], f"{where}.{key}".lstrip("."))
    elif where.endswith("_file") and isinstance(want, str):
        if have != root + want or not os.path.isfile(have):
            sys.exit(f"{where}: {have!r} is not a placeholder file for {want!r}")
    elif want != have:
        sys.exit(f"{where}: printed {have!r}, the ConfigMap has {want!r}")
walk(expected, got, "")
PY

# One scrape per pod: harbor-helm's own ServiceMonitor (tests/fixtures/harbor-helm, rendered for
# release "harbor"; its internal-TLS variant looks for another port) and ours never select the
# same Service port. A ServiceMonitor without namespaceSelector selects in its own namespace.
cat >"$WORK/one_scrape.py" <<'PY'
import sys
from urllib.parse import urlsplit
import yaml

rendered, release_ns, fixture = sys.argv[1], sys.argv[2], sys.argv[3]
# The Harbor release the values name (harbor.releaseName, harbor.name: harbor-helm's release and
# nameOverride, what its selector is made of).
values = (yaml.safe_load(open(sys.argv[4])) or {}) if len(sys.argv) > 4 else {}
harbor_values = {"releaseName": "harbor", "name": "harbor", **(values.get("harbor") or {})}
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
config = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["config.yaml"])
core = urlsplit(config["harbor"]["url"])
# Harbor's namespace and internal TLS, as the chart derived them for core's URL.
host = core.hostname.split(".")
harbor_ns = host[1] if len(host) > 2 else release_ns
harbor_sms = [d for d in yaml.safe_load_all(open(fixture)) if d]
harbor_sm = harbor_sms[1 if core.scheme == "https" else 0]
harbor_sm["metadata"]["namespace"] = harbor_ns
assert harbor_sm["spec"]["selector"]["matchLabels"] == {"release": "harbor", "app": "harbor"}, fixture
harbor_sm["spec"]["selector"]["matchLabels"] = {
    "release": harbor_values["releaseName"], "app": harbor_values["name"]}

def selects(sm, svc):
    sm_ns = sm["metadata"].get("namespace") or release_ns
    names = (sm["spec"].get("namespaceSelector") or {}).get("matchNames") or [sm_ns]
    if svc["metadata"].get("namespace", release_ns) not in names:
        return set()
    labels = svc["metadata"].get("labels") or {}
    if any(labels.get(k) != str(v) for k, v in sm["spec"]["selector"]["matchLabels"].items()):
        return set()
    ports = {p["name"] for p in svc["spec"]["ports"]}
    return {(svc["metadata"]["name"], e["port"]) for e in sm["spec"]["endpoints"] if e["port"] in ports}

services = [d for d in docs if d["kind"] == "Service"]
ours = [d for d in docs if d["kind"] == "ServiceMonitor"]
theirs = set().union(*(selects(harbor_sm, s) for s in services))
mine = set().union(*(selects(sm, s) for sm in ours for s in services))
if theirs & mine:
    sys.exit(f"both Harbor's ServiceMonitor and ours scrape {sorted(theirs & mine)}")
print("Harbor's ServiceMonitor" if theirs else "ours" if mine else "none")
PY

failures=0
check_values() {  # check_values LABEL [values file | helm flags…]
  local label="$1" out="$WORK/$1" args=() kube_min="$KUBE_MIN_DEFAULT" values_file=""
  shift
  mkdir -p "$out"
  if [[ $# == 1 && -f "$1" ]]; then
    args=(-f "$1") values_file="$1"
    kube_min="$(sed -n 's/^# kube-min: *\([0-9.]*\).*/\1/p' "$1" | head -n1)"
    kube_min="${kube_min:-$KUBE_MIN_DEFAULT}"
  else
    args=("$@")
  fi
  echo "==> $label"
  if ! helm lint --strict --quiet "$CHART" "${args[@]}" >"$out/lint" 2>&1; then
    cat "$out/lint"; echo "    FAIL helm lint --strict"; return 1
  fi
  if ! helm template referrers-sidecar "$CHART" --namespace harbor "${args[@]}" >"$out/rendered.yaml" 2>"$out/template.err"; then
    cat "$out/template.err"; echo "    FAIL helm template"; return 1
  fi
  local scrape
  # The route ranks above harbor-helm's /v2/ where it should, on each controller the docs name.
  if ! "$PY" scripts/lib/route_order.py "$out/rendered.yaml" tests/fixtures/harbor-helm "$(command -v nginx)"; then
    echo "    FAIL route order"; return 1
  fi
  if ! scrape="$("$PY" "$WORK/one_scrape.py" "$out/rendered.yaml" harbor \
                 tests/fixtures/harbor-helm/servicemonitor.yaml ${values_file:+"$values_file"})"; then
    echo "    FAIL one scrape per pod"; return 1
  fi
  echo "$scrape" >"$out/scrape"
  echo "    ok   one scrape per pod at most; scraped by: $scrape"
  # NOTES.txt is rendered by install only (helm template skips it); a client-side dry run
  # needs no cluster.
  if ! helm install referrers-sidecar "$CHART" --namespace harbor --dry-run=client "${args[@]}" \
       >"$out/install.txt" 2>"$out/install.err" || ! grep -q '^NOTES:' "$out/install.txt"; then
    cat "$out/install.err"; echo "    FAIL helm install --dry-run=client (NOTES.txt)"; return 1
  fi
  "$PY" "$WORK/validate.py" "$out/rendered.yaml" "$kube_min,$KUBE_LATEST" || return 1
  if ! scripts/render-config.sh --placeholders "$out/root" --namespace harbor "${args[@]}" \
       >"$out/config.yaml" 2>"$out/render-config.err"; then
    cat "$out/render-config.err"; echo "    FAIL scripts/render-config.sh"; return 1
  fi
  "$PY" "$WORK/same_config.py" "$out/rendered.yaml" "$out/config.yaml" "$out/root" \
    || { echo "    FAIL scripts/render-config.sh printed another configuration than the ConfigMap's"; return 1; }
  if ! "$BIN" check-config --config "$out/config.yaml" >"$out/effective.yaml" 2>"$out/check.err"; then
    cat "$out/check.err"; echo "    FAIL referrers-sidecar check-config"; return 1
  fi
  echo "    ok   check-config accepts the configuration scripts/render-config.sh prints"
}

check_values default || failures=$((failures + 1))
for values in "$CHART"/ci/*.yaml; do
  check_values "$(basename "$values" .yaml)" "$values" || failures=$((failures + 1))
done
# A label-only install as an operator types it: null is the empty list, not the binary's default.
check_values label-only-null --set config.projects.enabled=null || failures=$((failures + 1))
# Every routing mode and scope the docs name, with and without the operator API.
for mode in ingress traefik gateway; do
  for scope in referrers allOfV2; do
    for expose in false true; do
      check_values "route-$mode-$scope-operatorApi-$expose" --set routing.mode="$mode" --set routing.scope="$scope" \
        --set routing.host=harbor.example.com --set 'routing.gateway.parentRefs[0].name=harbor' \
        --set routing.operatorApi="$expose" --set-json 'config.projects.enabled=["dockerhub-proxy","ghcr-proxy"]' \
        || { failures=$((failures + 1)); continue; }
      # The operator API is routed from outside only when routing.operatorApi asks for it.
      routed=false
      grep -q '/referrers-sidecar/v1/' "$WORK/route-$mode-$scope-operatorApi-$expose/rendered.yaml" && routed=true
      if [[ "$routed" == "$expose" ]]; then
        echo "    ok   /referrers-sidecar/v1/ routed: $routed"
      else
        echo "    FAIL /referrers-sidecar/v1/ routed: $routed"; failures=$((failures + 1))
      fi
    done
  done
done
for label in label-only label-only-null; do
  if [[ -f "$WORK/$label/effective.yaml" ]]; then
    if "$PY" - "$WORK/$label/config.yaml" "$WORK/$label/install.txt" <<'PY'
import sys, yaml
config, notes = yaml.safe_load(open(sys.argv[1])), open(sys.argv[2]).read()
assert config["projects"]["enabled"] == [], config["projects"]
assert 'gives it the project label "referrers-proxy"' in notes, "NOTES.txt says nothing of the label"
PY
    then echo "    ok   $label: enabled [] in config.yaml, NOTES.txt says how to label a project"
    else echo "    FAIL $label: projects.enabled or NOTES.txt"; failures=$((failures + 1)); fi
  fi
done

# Harbor's labels by default, ours alone with serviceMonitor.enabled; and the check itself sees a
# double scrape (our Service given Harbor's labels beside our ServiceMonitor).
echo "==> one scrape per pod"
for expect in "default:Harbor's ServiceMonitor" "ingress-nginx:ours" "internal-tls:ours"; do
  label="${expect%%:*}"
  if [[ "$(cat "$WORK/$label/scrape" 2>/dev/null)" == "${expect#*:}" ]]; then
    echo "    ok   $label: scraped by ${expect#*:} only"
  else
    echo "    FAIL $label: scraped by $(cat "$WORK/$label/scrape" 2>/dev/null), expected ${expect#*:}"; failures=$((failures + 1))
  fi
done
"$PY" - "$WORK/ingress-nginx/rendered.yaml" "$WORK/double.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
for d in docs:
    if d["kind"] == "Service":
        d["metadata"]["labels"].update({"release": "harbor", "app": "harbor"})
yaml.safe_dump_all(docs, open(sys.argv[2], "w"))
PY
if "$PY" "$WORK/one_scrape.py" "$WORK/double.yaml" harbor tests/fixtures/harbor-helm/servicemonitor.yaml >/dev/null 2>&1; then
  echo "    FAIL the check missed a double scrape"; failures=$((failures + 1))
else
  echo "    ok   the check sees a double scrape when the Service carries Harbor's labels beside our ServiceMonitor"
fi

# The NetworkPolicy, on by default, admits exactly the front proxy of each routing mode, Harbor's
# job service when the webhook is on, and Prometheus: no rule admits any pod unless asked.
echo "==> NetworkPolicy admits the route's front proxy, the job service and Prometheus only"
cat >"$WORK/network_policy.py" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
expected = {port: [yaml.safe_load(p) for p in peers.split(";") if p] for port, peers in
            (arg.split("=", 1) for arg in sys.argv[2:])}
policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
assert len(policies) == 1, f"{len(policies)} NetworkPolicies"
admitted = {}
for rule in policies[0]["spec"]["ingress"]:
    assert rule.get("from"), f"a rule admits any pod: {rule}"
    for port in rule["ports"]:
        admitted.setdefault(port["port"], []).extend(rule["from"])
assert admitted == expected, f"admitted {admitted}\nexpected {expected}"
PY
HARBOR_NS='{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: harbor}}, podSelector: {matchLabels: {release: harbor, app: harbor, component: '
PROMETHEUS='{namespaceSelector: {}, podSelector: {matchLabels: {app.kubernetes.io/name: prometheus}}}'
for expect in \
  "default|http=${HARBOR_NS}nginx}}}" \
  "route-ingress-referrers-operatorApi-false|http={namespaceSelector: {}, podSelector: {matchLabels: {app.kubernetes.io/name: ingress-nginx, app.kubernetes.io/component: controller}}}" \
  "route-traefik-referrers-operatorApi-false|http={namespaceSelector: {}, podSelector: {matchLabels: {app.kubernetes.io/name: traefik}}}" \
  "route-gateway-referrers-operatorApi-false|http={namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: harbor}}, podSelector: {matchLabels: {gateway.networking.k8s.io/gateway-name: harbor}}}" \
  "existing-secrets|http=${HARBOR_NS}nginx}}};${HARBOR_NS}jobservice}}}"; do
  label="${expect%%|*}"
  if "$PY" "$WORK/network_policy.py" "$WORK/$label/rendered.yaml" "${expect#*|}" "http-metrics=$PROMETHEUS" 2>"$WORK/np.err"; then
    echo "    ok   $label"
  else
    cat "$WORK/np.err"; echo "    FAIL $label"; failures=$((failures + 1))
  fi
done
# An ingress controller the chart cannot name, or a Redis or trace collector outside Harbor's
# pods, must be named.
for unnamed in "routing.mode=ingress,routing.ingress.controller=other,routing.scope=allOfV2,routing.host=h.example" \
               "config.cache.backend=redis,harbor.redis.host=redis.example" \
               "trace.enabled=true,trace.otel.endpoint=collector.observability:4318"; do
  if helm template x "$CHART" --set "$unnamed" >/dev/null 2>"$WORK/np.err"; then
    echo "    FAIL rendered without naming the peer: --set $unnamed"; failures=$((failures + 1))
  elif grep -q "networkPolicy" "$WORK/np.err"; then
    echo "    ok   refused, naming networkPolicy: --set $unnamed"
  else
    cat "$WORK/np.err"; echo "    FAIL refused for another reason: --set $unnamed"; failures=$((failures + 1))
  fi
done

# Values the schema must refuse at install time.
echo "==> values.schema.json refuses bad values"
for bad in "routing.mode=ingres" "config.cache.backend=memcached" "config.projects.enabled=" \
           "replicas=-1" "config.upstream.max_pagez=5" "harbor.redis.databaseIndex=1" \
           "trace.provider=jaeger" "trace.sample_rate=2"; do
  if helm template x "$CHART" --set "$bad" >/dev/null 2>"$WORK/bad.err"; then
    echo "    FAIL accepted --set $bad"; failures=$((failures + 1))
  else
    echo "    ok   refused --set $bad"
  fi
done

# The bundled-nginx post-renderer on harbor-helm's own nginx ConfigMaps (HTTP, and TLS with
# internal TLS), then nginx -t and a live request matrix on loopback.
echo "==> harbor-nginx post-renderer"
if "$CHART/harbor-nginx/check.sh" "$WORK/post-render" "$BIN"; then
  echo "    ok   route inserted once before Harbor's location /v2/, nginx -t accepts it; Helm 3 and Helm 4 (a copied plugin) run it"
else
  echo "    FAIL harbor-nginx post-renderer"; failures=$((failures + 1))
fi

# The docker-compose add-on's configuration (its password file only exists on the Harbor host;
# an inline placeholder takes its place).
echo "==> deploy/compose/config/config.yaml"
if REFERRERS_SIDECAR__HARBOR__PASSWORD=placeholder \
   "$BIN" check-config --config deploy/compose/config/config.yaml >"$WORK/compose-effective.yaml" 2>"$WORK/compose.err"; then
  echo "    ok   check-config accepts it"
else
  cat "$WORK/compose.err"; echo "    FAIL check-config"; failures=$((failures + 1))
fi

if ((failures)); then
  echo "check-helm: $failures check(s) failed" >&2
  exit 1
fi
echo "check-helm: all checks passed"
