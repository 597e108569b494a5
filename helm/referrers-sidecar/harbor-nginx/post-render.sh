#!/bin/sh
# Helm post-renderer for harbor-helm's bundled nginx (expose.type clusterIP, nodePort or
# loadBalancer): reads Harbor's rendered manifests on stdin and writes them to stdout with the
# referrers route inserted before core's `location /v2/` in nginx's ConfigMap. Everything else
# passes through byte for byte.
#
#   post-render.sh --resolver 10.96.0.10 \
#     [--sidecar http://referrers-sidecar.harbor.svc.cluster.local:8080] [--operator-api]
#
# --resolver  the cluster DNS Service IP (kubectl -n kube-system get svc kube-dns
#             -o jsonpath='{.spec.clusterIP}'): nginx resolves the sidecar at request time,
#             so it starts even when the sidecar's Service does not exist.
# --sidecar   the sidecar's Service URL, with a fully qualified name (nginx's resolver does not
#             use the pod's search domains).
# --operator-api  also route /referrers-sidecar/v1/ (the operator API and Harbor's webhook
#             receiver) to the sidecar, as the chart's routing.operatorApi does; without it that
#             path stays Harbor's (its portal answers it).
#
# Failures to reach the sidecar (502/503/504) are answered by core: the route can never make
# Harbor worse than it is without it. POSIX sh and awk only.
set -eu

resolver=""
sidecar="http://referrers-sidecar.harbor.svc.cluster.local:8080"
operator_api=0
while [ $# -gt 0 ]; do
  case "$1" in
    --resolver) resolver="$2"; shift 2 ;;
    --resolver=*) resolver="${1#*=}"; shift ;;
    --sidecar) sidecar="$2"; shift 2 ;;
    --sidecar=*) sidecar="${1#*=}"; shift ;;
    --operator-api) operator_api=1; shift ;;
    *) echo "post-render.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$resolver" ] || { echo "post-render.sh: --resolver <cluster DNS IP> is required" >&2; exit 2; }

awk -v resolver="$resolver" -v sidecar="$sidecar" -v operator_api="$operator_api" '
BEGIN { proto = "$scheme" }
# What every location that proxies passes on, as the locations Harbor writes do.
function proxied(indent) {
  print indent "  proxy_set_header Host $http_host;"
  print indent "  proxy_set_header X-Real-IP $remote_addr;"
  print indent "  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;"
  print indent "  proxy_set_header X-Forwarded-Proto " proto ";"
  print indent "  proxy_buffering off;"
  print indent "  proxy_request_buffering off;"
}
function route(indent, scheme) {
  print indent "# referrers-sidecar: OCI referrers requests to the sidecar, falling back to core."
  print indent "location ~ ^/v2/.+/referrers/[^/]+$ {"
  print indent "  resolver " resolver " valid=10s ipv6=off;"
  print indent "  resolver_timeout 2s;"
  print indent "  set $referrers_sidecar_upstream \"" sidecar "\";"
  print indent "  proxy_pass $referrers_sidecar_upstream;"
  proxied(indent)
  print indent "  proxy_connect_timeout 2s;"
  print indent "  proxy_read_timeout 60s;"
  print indent "  proxy_intercept_errors on;"
  print indent "  error_page 502 503 504 = @referrers_sidecar_fallback_to_core;"
  print indent "}"
  print indent "location @referrers_sidecar_fallback_to_core {"
  print indent "  proxy_pass " scheme "://core;"
  if (scheme == "https") {
    print indent "  proxy_ssl_verify off;"
    print indent "  proxy_ssl_session_reuse on;"
  }
  proxied(indent)
  print indent "}"
  if (operator_api) {
    print indent "# referrers-sidecar: its operator API and webhook receiver (--operator-api)."
    print indent "location /referrers-sidecar/v1/ {"
    print indent "  resolver " resolver " valid=10s ipv6=off;"
    print indent "  resolver_timeout 2s;"
    print indent "  set $referrers_sidecar_operator \"" sidecar "\";"
    print indent "  proxy_pass $referrers_sidecar_operator;"
    proxied(indent)
    print indent "}"
  }
  print ""
}
# The HTTPS config of Harbor maps X-Forwarded-Proto from a TLS-terminating load balancer; the
# HTTP one has no such map.
/map \$http_x_forwarded_proto \$x_forwarded_proto/ { proto = "$x_forwarded_proto" }
# Hold each `location /v2/ {` line until the next line says whether it proxies to core.
held != "" {
  if ($0 ~ /proxy_pass https?:\/\/core\/v2\//) {
    match(held, /^[ \t]*/)
    scheme = ($0 ~ /https:\/\/core/) ? "https" : "http"
    if (!already) route(substr(held, 1, RLENGTH), scheme)
    inserted++
  }
  print held
  held = ""
}
/^[ \t]*location \/v2\/ \{[ \t]*$/ { held = $0; next }
/referrers-sidecar: OCI referrers requests/ { already++ }
{ print }
END {
  if (held != "") print held
  if (already) { print "post-render.sh: the route is already present; input left as is" > "/dev/stderr" }
  else if (!inserted) { print "post-render.sh: no nginx location /v2/ proxying to core found: is this harbor-helm with expose.type clusterIP/nodePort/loadBalancer?" > "/dev/stderr"; exit 1 }
}'
