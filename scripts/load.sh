#!/usr/bin/env bash
# Load run on loopback: the demo set-up (real upstream, Harbor core double, sidecar), then wrk
# against (1) referrers through the sidecar (cache hit), (2) the same request straight to the
# core double (what the sidecar must ask per request anyway), (3) a pass-through request via
# the sidecar and (4) the same straight to core. Compare ratios, not absolute numbers: the
# machine is shared and wrk, the sidecar and the double share its cores.
#
#   scripts/load.sh [seconds per run, default 10] [connections, default 16]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-16}
tools="${REFERRERS_SIDECAR_TOOLS:-$HOME/.cache/referrers-sidecar/tools}"
export PATH="$tools/bin:$PATH"
target=target/load
# Release code without LTO: close to the image's binary, much faster to build.
CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_TARGET_DIR=$target \
  cargo build -q --release -p referrers-sidecar -p e2e --bins
export REFERRERS_SIDECAR_BIN=$target/release/referrers-sidecar

out=$(mktemp)
"$target/release/referrers-demo" >"$out" 2>&1 &
demo=$!
trap 'kill $demo 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 1 300); do grep -q "Serving until Ctrl-C" "$out" && break; sleep 0.1; done
grep -q "Serving until Ctrl-C" "$out" || { cat "$out"; echo "demo did not start" >&2; exit 1; }

sidecar=$(grep -o 'referrers-sidecar: *http://[0-9.:]*' "$out" | grep -o 'http://.*')
core=$(grep -o 'Harbor core (test double): *http://[0-9.:]*' "$out" | grep -o 'http://.*')
path=$(grep -o '/v2/demo-proxy/team/app/referrers/sha256:[0-9a-f]*' "$out" | head -n 1)
auth="Authorization: Basic $(printf 'demo:demo-password' | base64)"
curl -sf -H "$auth" "$sidecar$path" >/dev/null # warm the cache

run() {
  local name=$1 url=$2
  local result
  result=$(wrk -t2 -c"$connections" -d"${seconds}s" --latency -H "$auth" "$url")
  printf '%-34s %10s req/s   p50 %8s   p99 %8s   non-2xx %s\n' "$name" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$result")" \
    "$(awk '$1=="50%" {print $2}' <<<"$result")" \
    "$(awk '$1=="99%" {print $2}' <<<"$result")" \
    "$(awk '/Non-2xx/ {print $5}' <<<"$result")"
}
echo "wrk -t2 -c$connections -d${seconds}s on $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
run "referrers via sidecar (cache hit)" "$sidecar$path"
run "referrers from core double" "$core$path"
run "pass-through via sidecar (/v2/)" "$sidecar/v2/"
run "same, straight to core double" "$core/v2/"
