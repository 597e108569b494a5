#!/usr/bin/env bash
# Checks post-render.sh (called by scripts/check-helm.sh): on Harbor-shaped ConfigMaps it adds
# the route once, before core's `location /v2/`; the result passes `nginx -t` and serves a
# live request matrix (scripts/lib/harbor_nginx_live.py); Helm 4 runs it as a post-renderer
# plugin installed as a copy (the source folder moved away after the install), and Helm 3 runs
# it as --post-renderer.
#   check.sh WORK_DIR SIDECAR_BINARY
set -Eeuo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
sidecar_bin="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
# harbor-helm's nginx ConfigMaps as it renders them (origin and versions: README.md there).
fixtures="$here/../../../tests/fixtures/harbor-helm"
work="$1"; mkdir -p "$work"
TOOLS="${REFERRERS_SIDECAR_TOOLS:-$HOME/.cache/referrers-sidecar/tools}"
PY="$TOOLS/venv/bin/python"

for variant in http https; do
  fixture="$fixtures/nginx-$variant.yaml"
  out="$work/$variant"; mkdir -p "$out"
  "$here/post-render.sh" --resolver 127.0.0.1 \
    --sidecar http://referrers-sidecar.harbor.svc.cluster.local:8080 <"$fixture" >"$out/rendered.yaml"
  # Everything but the inserted lines is unchanged.
  diff "$fixture" "$out/rendered.yaml" | grep '^>' >"$out/added" || true
  if diff "$fixture" "$out/rendered.yaml" | grep -q '^<'; then
    echo "    $variant: post-render.sh changed or dropped input lines" >&2; exit 1
  fi
  [[ "$(grep -c 'location ~ ^/v2/.+/referrers/\[^/\]+\$ {' "$out/rendered.yaml")" == 1 ]] \
    || { echo "    $variant: route not inserted exactly once" >&2; exit 1; }
  # Idempotent: a second pass leaves the output as it is.
  "$here/post-render.sh" --resolver 127.0.0.1 <"$out/rendered.yaml" 2>/dev/null | cmp -s - "$out/rendered.yaml" \
    || { echo "    $variant: a second pass changed the output" >&2; exit 1; }
  # nginx -t, then a live request matrix on loopback: Harbor's core and portal stand-ins, the
  # real sidecar (stopped, then unresolvable), with and without --operator-api.
  "$PY" "$here/../../../scripts/lib/harbor_nginx_live.py" "$fixture" "$here/post-render.sh" "$sidecar_bin" \
    "$(command -v nginx)" "$out/live" || { echo "    $variant: the live request matrix failed" >&2; exit 1; }
done

# No location /v2/ to core (e.g. Harbor exposed by Ingress): a loud failure, not a silent no-op.
if printf 'apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n' | "$here/post-render.sh" --resolver 127.0.0.1 >/dev/null 2>&1; then
  echo "    post-render.sh accepted manifests without Harbor's nginx" >&2; exit 1
fi

# A chart that renders the fixture as harbor-helm renders its nginx ConfigMap.
mkdir -p "$work/chart/templates"
printf 'apiVersion: v2\nname: harbor-shaped\nversion: 0.0.1\n' >"$work/chart/Chart.yaml"
sed 's/{{/{{`{{`}}/g' "$fixtures/nginx-http.yaml" >"$work/chart/templates/nginx.yaml"
routed() {  # routed FILE WHO: the post-rendered output carries the route with the given resolver
  grep -q 'resolver 10.96.0.10 valid=10s' "$1" || { echo "    $2: route not in the output" >&2; exit 1; }
}

# Helm 4 runs it as a post-renderer plugin, installed by install-plugin.sh as a copy: after the
# folder it was installed from moves away, an upgrade still finds it.
export HELM_PLUGINS="$work/data/plugins" HELM_CACHE_HOME="$work/cache" HELM_CONFIG_HOME="$work/config" HELM_DATA_HOME="$work/data"
mkdir -p "$work/checkout"
cp -R "$here" "$work/checkout/harbor-nginx"
"$work/checkout/harbor-nginx/install-plugin.sh" >/dev/null
mv "$work/checkout" "$work/checkout-moved"
helm template harbor "$work/chart" --post-renderer referrers-route \
  --post-renderer-args=--resolver=10.96.0.10 >"$work/plugin-out.yaml"
routed "$work/plugin-out.yaml" "helm 4 plugin, after the source folder moved"
[ ! -L "$HELM_PLUGINS/referrers-route" ] || { echo "    helm 4 plugin: installed as a link" >&2; exit 1; }
# A repeat install (an upgrade of the plugin) replaces the copy.
"$work/checkout-moved/harbor-nginx/install-plugin.sh" >/dev/null
helm template harbor "$work/chart" --post-renderer referrers-route \
  --post-renderer-args=--resolver=10.96.0.10 | cmp -s - "$work/plugin-out.yaml" \
  || { echo "    helm 4 plugin: a repeat install changed the output" >&2; exit 1; }

# Helm 3 takes the script itself as --post-renderer (its own plugin folder: Helm 3 cannot
# read a Helm 4 plugin.yaml and says so on every command).
HELM_PLUGINS="$work/data/plugins-helm3" helm3 template harbor "$work/chart" \
  --post-renderer "$here/post-render.sh" --post-renderer-args=--resolver=10.96.0.10 >"$work/helm3-out.yaml"
routed "$work/helm3-out.yaml" "helm 3 --post-renderer"
"$PY" - "$work/helm3-out.yaml" "$work/plugin-out.yaml" <<'PY' || { echo "    helm 3 and helm 4 post-render differently" >&2; exit 1; }
import sys, yaml
confs = [[d["data"]["nginx.conf"] for d in yaml.safe_load_all(open(f)) if d] for f in sys.argv[1:]]
sys.exit(0 if confs[0] == confs[1] else 1)
PY
