#!/usr/bin/env bash
# The soak run (not part of make test): the sidecar under mixed load on loopback for
# SOAK_SECONDS (default 600) while its upstream flaps (down, then up again, every 30 s) and its
# Redis is restarted (every 120 s). nginx plays Harbor core (the referrers endpoint, which
# answers 401 without the load's credentials, a pass-through path, systeminfo, the project and
# its registry) and the upstream registry; redis-server is real. The load (Python threads,
# keep-alive connections) mixes cache hits, misses (a subject never asked before), pass-through
# and unauthorized requests, and counts every answer by kind and status.
#
# It writes what it saw into docs/reliability.md between marker comments: requests, non-2xx
# answers to authorized referrers requests (there must be none), peak RSS, upstream calls.
# It fails when an authorized referrers request got anything but a 2xx.
#
#   scripts/soak.sh            SOAK_SECONDS=60 scripts/soak.sh   (a short trial)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SOAK_SECONDS:-600}
flap_every=30
redis_restart_every=120
threads=8
doc=docs/reliability.md
# shellcheck source=scripts/lib/loopback.sh
. scripts/lib/loopback.sh

faults_pid=
cleanup() {
  [ -z "$faults_pid" ] || kill "$faults_pid" 2>/dev/null || true
  if [ -n "$work" ]; then
    stop_by_pid_file "$work/upstream.pid"
    stop_by_pid_file "$work/redis.pid"
  fi
  stop_loopback
}

require_tools nginx redis-server
cargo build -q -p referrers-sidecar
sidecar_bin=$PWD/target/debug/referrers-sidecar
loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)

make_work
read -r core_port upstream_port redis_port sidecar_port metrics_port < <(free_ports 5)
credentials=$(printf 'soak:soak-password' | base64)

# The upstream's list (10 referrers, for every subject), core's local list (one referrer of its
# own) and the REST answers the sidecar reads.
python3 - "$work" "$upstream_port" <<'EOF'
import hashlib, json, pathlib, sys
work, upstream_port = pathlib.Path(sys.argv[1]), sys.argv[2]
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
sha = lambda text: "sha256:" + hashlib.sha256(text.encode()).hexdigest()
index = lambda manifests: json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests})

def write(path, text):
    path = work / path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)

write("upstream/list.json", index([
    {"mediaType": MANIFEST, "digest": sha(f"referrer-{i}"), "size": 700 + i,
     "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json"} for i in range(10)]))
write("core/local.json", index([{"mediaType": MANIFEST, "digest": sha("local-only"), "size": 512,
                                 "artifactType": "application/vnd.cncf.notary.signature"}]))
write("core/manifest.json", json.dumps({"schemaVersion": 2}))
write("core/systeminfo.json", json.dumps({"harbor_version": "v2.15.2-soak"}))
write("core/project.json", json.dumps({"project_id": 2, "name": "soak-proxy", "registry_id": 1,
                                       "metadata": {"public": "false"}}))
write("core/registry.json", json.dumps({"id": 1, "name": "soak-upstream", "type": "docker-registry",
                                        "url": f"http://127.0.0.1:{upstream_port}",
                                        "insecure": True, "status": "healthy"}))
EOF

cat >"$work/core.conf" <<EOF
worker_processes 1;
pid $work/core.pid;
events { worker_connections 4096; }
http {
  access_log off;
  types { }
  default_type application/json;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$core_port;
    root $work/core;
    # Harbor core authorizes the caller with the referrers request itself.
    location ~ "^/v2/.+/referrers/sha256:[0-9a-f]{64}\$" {
      if (\$http_authorization != "Basic $credentials") {
        add_header WWW-Authenticate 'Basic realm="harbor"' always;
        return 401 '{"errors":[{"code":"UNAUTHORIZED","message":"unauthorized"}]}';
      }
      default_type $INDEX_TYPE;
      try_files /local.json =404;
    }
    location ~ "^/v2/.+/manifests/" { try_files /manifest.json =404; }
    location = /api/v2.0/systeminfo { try_files /systeminfo.json =404; }
    location = /api/v2.0/projects/soak-proxy { try_files /project.json =404; }
    location = /api/v2.0/registries/1 { try_files /registry.json =404; }
  }
}
EOF
# The upstream, in an nginx of its own so that it can be stopped and started; its access log
# counts the sidecar's calls.
cat >"$work/upstream.conf" <<EOF
worker_processes 1;
pid $work/upstream.pid;
events { worker_connections 4096; }
http {
  types { }
  log_format calls '\$request_method \$request_uri \$status';
  access_log $work/upstream-access.log calls;
  server {
    listen 127.0.0.1:$upstream_port;
    root $work/upstream;
    location = /v2/ { return 200 '{}'; }
    location ~ "^/v2/.+/referrers/sha256:[0-9a-f]{64}\$" {
      default_type $INDEX_TYPE;
      try_files /list.json =404;
    }
  }
}
EOF
# As shipped, with Redis, lists fresh for 20 s (so that entries go stale and are refreshed
# while the upstream flaps) and listeners on loopback.
{
  sidecar_config_head soak
  cat <<EOF
cache:
  backend: redis
  redis_url: redis://127.0.0.1:$redis_port/10
  fresh_for: 20s
EOF
} >"$work/sidecar.yaml"

# The upstream and Redis are stopped and started by the fault loop, a subshell: they are found
# by their pid files, never by a variable of the shell that started them.
start_upstream() {
  nginx -p "$work" -c "$work/upstream.conf" -e "$work/upstream-error.log" -g 'daemon off;' &
  for _ in $(seq 1 100); do
    [ -s "$work/upstream.pid" ] && return
    sleep 0.05
  done
  die "the upstream's nginx did not start: $(cat "$work/upstream-error.log")"
}
start_redis() {
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" --pidfile "$work/redis.pid" >>"$work/redis.log" 2>&1 &
  for _ in $(seq 1 100); do
    [ -s "$work/redis.pid" ] && return
    sleep 0.05
  done
  die "redis-server did not start: $(tail -n 5 "$work/redis.log")"
}
# Stops the process whose pid file is $1, if it runs, and waits for it to go.
stop_by_pid_file() {
  local pid
  [ -s "$1" ] || return 0
  pid=$(<"$1")
  kill "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  rm -f "$1"
}
upstream_calls() {
  grep -c '/referrers/' "$work/upstream-access.log" 2>/dev/null || true
}

start_nginx core
start_upstream
start_redis
start_sidecar sidecar

# The faults, on their own clock, while the load runs: the upstream flaps, Redis restarts.
faults() {
  local t=0 flaps=0 restarts=0
  while [ "$t" -lt "$seconds" ]; do
    sleep 1
    t=$((t + 1))
    if [ $((t % flap_every)) -eq 0 ]; then
      if [ -s "$work/upstream.pid" ]; then stop_by_pid_file "$work/upstream.pid"; else start_upstream; fi
      flaps=$((flaps + 1))
    fi
    if [ $((t % redis_restart_every)) -eq 0 ]; then
      stop_by_pid_file "$work/redis.pid"
      sleep 2
      start_redis
      restarts=$((restarts + 1))
    fi
  done
  echo "$flaps $restarts" >"$work/faults"
}
faults &
faults_pid=$!

python3 - "$sidecar_port" "$credentials" "$seconds" "$threads" >"$work/load.json" <<'EOF'
import collections, hashlib, http.client, json, random, sys, threading, time
port, credentials, seconds, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sha = lambda text: "sha256:" + hashlib.sha256(text.encode()).hexdigest()
# Hits: a few subjects asked over and over. Misses: a subject nobody asked before.
warm = [sha(f"warm-{i}") for i in range(50)]
kinds = ["hit"] * 60 + ["miss"] * 15 + ["passthrough"] * 15 + ["unauthorized"] * 10
counts = collections.Counter()
# X-Referrers-Cache and X-Referrers-Upstream of the authorized referrers answers.
headers_seen = collections.Counter()
lock = threading.Lock()
end = time.monotonic() + seconds

def request(kind, n):
    headers = {"Authorization": f"Basic {credentials}"}
    if kind == "hit":
        path = f"/v2/soak-proxy/app/referrers/{random.choice(warm)}"
    elif kind == "miss":
        path = f"/v2/soak-proxy/app/referrers/{sha(f'cold-{threading.get_ident()}-{n}')}"
    elif kind == "passthrough":
        path = "/v2/soak-proxy/app/manifests/latest"
    else:
        path = f"/v2/soak-proxy/app/referrers/{random.choice(warm)}"
        headers = {"Authorization": "Basic bm9ib2R5Ondyb25n"}
    return path, headers

def run():
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    n = 0
    while time.monotonic() < end:
        kind = random.choice(kinds)
        path, headers = request(kind, n)
        n += 1
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            status = str(response.status)
            if kind in ("hit", "miss"):
                with lock:
                    headers_seen[("cache", response.getheader("X-Referrers-Cache", "-"))] += 1
                    headers_seen[("upstream", response.getheader("X-Referrers-Upstream", "-"))] += 1
        except (OSError, http.client.HTTPException) as error:
            status = type(error).__name__
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        with lock:
            counts[(kind, status)] += 1

workers = [threading.Thread(target=run) for _ in range(threads)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
print(json.dumps({
    "answers": {f"{kind} {status}": n for (kind, status), n in sorted(counts.items())},
    "headers": {f"{name} {value}": n for (name, value), n in sorted(headers_seen.items())},
}))
EOF
wait "$faults_pid"
read -r flaps restarts <"$work/faults"
peak_rss_kib=$(rss_kib "$sidecar_pid" VmHWM)
rss_kib_now=$(rss_kib "$sidecar_pid" VmRSS)
errors_logged=$(grep -c '"level":"ERROR"' "$work/sidecar.log" || true)
calls=$(upstream_calls)
stop_sidecar

python3 - "$work/load.json" >"$work/table.md" <<EOF
import json, sys
load = json.load(open(sys.argv[1]))
counts, headers = load["answers"], load["headers"]
total = sum(counts.values())
by_kind = {}
for key, n in counts.items():
    kind, status = key.split(" ", 1)
    by_kind.setdefault(kind, {})[status] = n
bad = sum(n for kind in ("hit", "miss") for status, n in by_kind.get(kind, {}).items()
          if not status.startswith("2"))
busy = float("$loadavg_before".split()[0]) > $(nproc)
print(f"Run on $(date -u +%Y-%m-%dT%H:%MZ): $(machine | sed 's/, load average.*//'); load "
      f"average (1, 5, 15 min) $loadavg_before before the run and $(cut -d' ' -f1-3 /proc/loadavg) after"
      + (": **the machine was shared and loaded, other builds and tests competed for the CPU**"
         if busy else "") + ".  ")
print("Code at commit $(code_commit), debug build (\`cargo build\`), Redis $(redis-server --version | cut -d' ' -f3 | cut -d= -f2), nginx $(nginx -v 2>&1 | cut -d/ -f2).  ")
print("Method: \`scripts/soak.sh\`: $seconds s of load from $threads keep-alive connections "
      "(60 % hits on 50 subjects, 15 % misses on subjects never asked before, 15 % pass-through "
      "manifest requests, 10 % referrers requests with wrong credentials); the upstream stopped "
      "or started every ${flap_every} s ($flaps times), Redis restarted every ${redis_restart_every} s "
      "($restarts times).")
print()
print("| | |")
print("|---|---:|")
print(f"| requests | {total:,} |")
labels = {"hit": "referrers, 50 subjects asked again and again",
          "miss": "referrers, a subject never asked before",
          "passthrough": "pass-through (a manifest)",
          "unauthorized": "referrers with wrong credentials"}
for kind in ("hit", "miss", "passthrough", "unauthorized"):
    statuses = ", ".join(f"{n:,} × {status}" for status, n in sorted(by_kind.get(kind, {}).items()))
    print(f"| {labels[kind]} | {statuses} |")
print(f"| **non-2xx answers to authorized referrers requests** | **{bad}** |")
for name in ("cache", "upstream"):
    values = ", ".join(f"{n:,} × \`{key.split(' ', 1)[1]}\`"
                       for key, n in sorted(headers.items(), key=lambda item: -item[1])
                       if key.startswith(name + " "))
    print(f"| their \`X-Referrers-{name.capitalize()}\` | {values} |")
print(f"| peak RSS (VmHWM) | {$peak_rss_kib / 1024:.1f} MiB (RSS at the end: {$rss_kib_now / 1024:.1f} MiB) |")
print(f"| upstream referrers calls | {$calls:,} |")
print(f"| errors logged by the sidecar | {$errors_logged} |")
open("$work/bad", "w").write(str(bad))
EOF
write_section soak "$work/table.md"
bad=$(<"$work/bad")
[ "$bad" = 0 ] || die "$bad authorized referrers requests got a non-2xx answer"
