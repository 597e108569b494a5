#!/usr/bin/env bash
# `make bench`: criterion's measurement of the answer's pure work, then one load run on
# loopback that puts the sidecar's cache hit next to nginx carrying the same bytes. Both write
# their tables into docs/benchmarks.md between marker comments, so the numbers there are always
# a run's output, never typed by hand.
#
# The load run needs no test harness: nginx plays Harbor core (the referrers endpoint, which
# authorizes 2,000 generated callers and answers a small local list from a file; systeminfo, a
# proxy-cache project and its registry) and the upstream registry (N referrers from a file);
# redis-server is real. In one run, at 10, 100 and 1,000 upstream referrers: (a) nginx serving
# the sidecar's answer from a file, (b) the same-bytes hop: nginx proxying to an nginx that
# authorizes the caller and serves the sidecar's answer from a file (gzip_static: the
# sidecar's own compressed bytes where the client accepts gzip), (c) the sidecar's cache hit
# with distinct callers (every request in flight has credentials of its own: no call to core
# is shared) and (d) with one caller (identical credentials: identical calls in flight share
# one). At 100 referrers, (b) and (c) again with gzip accepted, and the hit of a second replica
# whose in-process tier holds nothing (every hit read from Redis). Then the cold stampede, a
# burst of 500 identical requests against a core that takes 20 ms per referrers answer, RSS,
# time to ready and memory per cached descriptor. Compare ratios, not absolute numbers: wrk
# and every server share the machine's cores.
#
#   scripts/bench.sh [all|criterion|load|hop|burst|memory]  (default: all)
#   BENCH_SECONDS: length of each wrk run (default 10)
#   BENCH_SIDECAR_BIN: a sidecar binary to load instead of the shipped build (an unstripped
#     one for a profiler); the run's header names it
#
# `hop`, `burst` and `memory` are quick and write nothing. `hop` compares (b) with (c) and (d)
# at 10 and 100 referrers, and with gzip at 100. `burst` runs the burst alone. `memory` prints
# the load run's start-up and memory numbers alone: time to ready, idle RSS and threads, and
# memory per cached descriptor with the answer memo on and off.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
seconds=${BENCH_SECONDS:-10}
# The targets in the generated table are set at 64 connections.
connections=64
# Credentials of distinct callers: wrk's two threads take 1,000 each.
callers=2000
fill_subjects=10000
fill_referrers=10
# The burst: this many identical requests at once, core taking this long per referrers answer.
burst_requests=500
core_delay_ms=20
# cache.answer_memo_bytes as shipped.
memo_bytes=16777216
doc=docs/benchmarks.md
# The criterion benches: release code without LTO (the bench profile inherits release), much
# faster to build. The sidecar under load is built as the image ships it (see prepare_load).
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
export CARGO_TARGET_DIR=$PWD/target/load
# shellcheck source=scripts/lib/loopback.sh
. scripts/lib/loopback.sh

case $what in all | criterion | load | hop | burst | memory) ;; *)
  echo "usage: $0 [all|criterion|load|hop|burst|memory]" >&2
  exit 2
  ;;
esac

run_criterion() {
  local args=(--warm-up-time 1 --measurement-time 3 --noplot)
  local about
  about="$(date -u +%Y-%m-%d), $(machine), $(rustc --version | cut -d' ' -f1-2), code at commit $(code_commit)"
  # Old results of benches that no longer exist must not reach the table.
  rm -rf "$CARGO_TARGET_DIR/criterion"
  cargo bench -q -p oci-referrers --bench referrers_answer -- "${args[@]}"
  local table=$CARGO_TARGET_DIR/criterion/table.md
  python3 - "$CARGO_TARGET_DIR/criterion" "$about" "${args[*]}" >"$table" <<'EOF'
import json, pathlib, sys
root, about, args = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]

def duration(ns):
    for unit, scale in (("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            value = ns / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{ns:.0f} ns"

groups = {}
for found in sorted(root.glob("*/**/new/benchmark.json")):
    meta = json.loads(found.read_text())
    estimate = json.loads((found.parent / "estimates.json").read_text())
    group = groups.setdefault(meta["group_id"], {})
    column = meta.get("function_id") or "time"
    group.setdefault(meta["value_str"], {})[column] = estimate["median"]["point_estimate"]
print(f"Run on {about}; `{args}`, criterion's median estimate.")
for name, rows in groups.items():
    columns = sorted({c for row in rows.values() for c in row})
    print(f"\n`{name}`:\n")
    print("| referrers upstream | " + " | ".join(f"`{c}`" for c in columns) + " |")
    print("|---:|" + "---:|" * len(columns))
    for value in sorted(rows, key=lambda v: int(v) if v.isdigit() else v):
        cells = (duration(rows[value][c]) if c in rows[value] else "" for c in columns)
        print(f"| {value} | " + " | ".join(cells) + " |")
EOF
  write_section criterion "$table"
}

# ---------------------------------------------------------------------------- the load run

redis_pid=
slow_core_pid=
cleanup() {
  local pid
  for pid in $slow_core_pid $redis_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  stop_loopback
}

# user+sys clock ticks of the given processes (all their threads) so far.
cpu_ticks() {
  local pid total=0 stat fields
  for pid in "$@"; do
    stat=$(<"/proc/$pid/stat")
    # Fields after the command name, which may hold spaces: utime and stime are 12th and 13th.
    read -ra fields <<<"${stat##*) }"
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}

# A sample's value on the sidecar's /metrics ($1: name with its labels, as exported); 0 when
# it has none yet.
metric() {
  curl -sf "http://127.0.0.1:$metrics_port/metrics" |
    awk -v name="$1" '$1 == name {v = $2} END {print v + 0}'
}

upstream_referrers_calls() {
  grep -c "${1:-/referrers/}" "$work/upstream-access.log" || true
}

redis_commands() {
  redis-cli -p "$redis_port" info stats | awk -F: '$1 == "total_commands_processed" {print $2 + 0}'
}

result() {
  printf '%s=%s\n' "$1" "$2" >>"$work/results"
}

# wrk for $2 seconds against $3 as the callers $1 names: `distinct` (each request in flight
# with credentials of its own), `one` (all with the same), either with `+gzip` (accepts gzip).
run_wrk() {
  local pool=1 encoding=identity
  case $1 in distinct*) pool=$((callers / 2)) ;; esac
  case $1 in *+gzip) encoding=gzip ;; esac
  wrk -t2 -c"$connections" -d"$2s" -s "$work/callers.lua" "$3" -- "$pool" "$encoding"
}

# wrk against $3 as $1, as the callers $2 names (see run_wrk). CPU ticks of the PIDs after the
# URL are counted over the run.
load() {
  local label=$1 callers_mode=$2 url=$3
  shift 3
  local before after out
  before=$(cpu_ticks "$@")
  out=$(run_wrk "$callers_mode" "$seconds" "$url")
  after=$(cpu_ticks "$@")
  # The script's done() prints `wrk requests=… bytes=… …` (exact counts, latency in µs).
  out=$(awk '$1 == "wrk" {$1 = ""; print}' <<<"$out")
  local requests bytes duration_us p50_us p99_us errors
  eval "$out"
  [ "${requests:-0}" -gt 0 ] || die "wrk made no request to $url"
  local rps p99_ms
  rps=$(awk -v n="$requests" -v us="$duration_us" 'BEGIN {printf "%.0f", n * 1e6 / us}')
  p99_ms=$(awk -v us="$p99_us" 'BEGIN {printf "%.2f", us / 1000}')
  result "$label.rps" "$rps"
  result "$label.requests" "$requests"
  result "$label.bytes" "$(awk -v b="$bytes" -v n="$requests" 'BEGIN {printf "%.0f", b / n}')"
  result "$label.p50_ms" "$(awk -v us="$p50_us" 'BEGIN {printf "%.2f", us / 1000}')"
  result "$label.p99_ms" "$p99_ms"
  result "$label.errors" "$errors"
  result "$label.cpu_us" "$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" \
    -v n="$requests" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}')"
  printf '%-22s %8s req/s  p99 %s ms\n' "$label" "$rps" "$p99_ms" >&2
}

# Connections core's stand-in accepted so far.
core_accepts() {
  curl -sf "http://127.0.0.1:$core_port/stub_status" | awk 'NR == 3 {print $1}'
}

# The sidecar's cache hit at `path` as "$1.<n>": a one-second run of the same callers first
# fills the sidecar's pools of connections to core (a fresh process opens them as the load
# rises); the calls to core shared and the connections core accepted meanwhile are counted
# (with connections kept alive, none).
load_sidecar() {
  local label=$1 callers_mode=$2 url="http://127.0.0.1:$sidecar_port$3" shared_before accepts_before
  run_wrk "$callers_mode" 1 "$url" >/dev/null
  shared_before=$(metric harbor_referrers_core_calls_coalesced_total)
  accepts_before=$(core_accepts)
  load "$label" "$callers_mode" "$url" "$sidecar_pid"
  result "$label.shared" $(($(metric harbor_referrers_core_calls_coalesced_total) - shared_before))
  # Less one: the second stub_status request's own connection.
  result "$label.core_connections" $(($(core_accepts) - accepts_before - 1))
}

# GET through the sidecar as the first caller; fails unless 200 with the expected number of
# descriptors. Keeps the body in $3 and, when $4 is given, the gzip-compressed body as sent.
fetch_checked() {
  local path=$1 expected=$2 out=$3 gz=${4:-} count
  curl -sf -H "$auth" -o "$out" "http://127.0.0.1:$sidecar_port$path" ||
    die "GET $path through the sidecar failed: $(tail -n 5 "$work/sidecar.log")"
  count=$(jq '.manifests | length' "$out")
  [ "$count" = "$expected" ] || die "$path: $count descriptors, expected $expected"
  [ -n "$gz" ] || return 0
  curl -sf -H "$auth" -H 'Accept-Encoding: gzip' -o "$gz" "http://127.0.0.1:$sidecar_port$path"
  gzip -dc "$gz" | cmp -s - "$out" || die "$path: the gzip answer does not inflate to the answer"
}

# One curl process making many requests, at most $2 at once; prints how many answered 200.
parallel_get() {
  local urls=$1 at_once=$2
  curl -s --no-progress-meter --parallel --parallel-immediate --parallel-max "$at_once" -H "$auth" \
    -w '%{http_code}\n' -K "$urls" | grep -c '^200$' || true
}

# Builds the sidecar, generates the data and configurations, and starts the nginx backends
# (core's stand-in, the upstream), front (static file, same-bytes hop) and Redis.
prepare_load() {
  require_tools wrk nginx redis-server redis-cli
  if [ -n "${BENCH_SIDECAR_BIN:-}" ]; then
    sidecar_bin=$BENCH_SIDECAR_BIN
  else
    # The release profile the image ships (thin LTO, one codegen unit), in a target dir of its
    # own.
    env -u CARGO_PROFILE_RELEASE_LTO -u CARGO_PROFILE_RELEASE_CODEGEN_UNITS \
      CARGO_TARGET_DIR="$PWD/target/shipped" cargo build -q --release --locked -p referrers-sidecar
    sidecar_bin=$PWD/target/shipped/release/referrers-sidecar
  fi
  local loadavg_before
  loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)

  make_work
  read -r core_port upstream_port front_port hop_port answers_port sidecar_port metrics_port \
    redis_port slow_core_port < <(free_ports 9)

  # Subjects, the upstream's lists (list 10 ⊂ 100 ⊂ 1000, as one signer keeps adding), core's
  # local list (one referrer the upstream has too, as Harbor reports it, and one of its own),
  # the REST answers the sidecar reads, and the callers' credentials: nginx's map of them
  # (core's stand-in and the hop's backend authorize with it), a list for the slow core, and
  # wrk's script.
  python3 - "$work" "$upstream_port" "$fill_subjects" "$fill_referrers" "$callers" <<'EOF'
import base64, hashlib, json, pathlib, sys
work, upstream_port = pathlib.Path(sys.argv[1]), sys.argv[2]
fill_subjects, fill_referrers, callers = (int(a) for a in sys.argv[3:6])
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
TYPES = ["application/vnd.dev.cosign.artifact.sig.v1+json", "application/spdx+json",
         "application/vnd.in-toto+json", "application/vnd.cncf.notary.signature"]
sha = lambda text: "sha256:" + hashlib.sha256(text.encode()).hexdigest()

def referrer(i):
    return {"mediaType": MANIFEST, "digest": sha(f"referrer-{i}"), "size": 700 + i,
            "artifactType": TYPES[i % len(TYPES)],
            "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z",
                            "dev.sigstore.cosign/signer": "ci@example.com"}}

def index(manifests):
    return json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests})

def write(path, text):
    path = work / path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)

for n in (10, 100, 1000):
    write(f"upstream/r{n}.json", index([referrer(i) for i in range(n)]))
write("upstream/fill.json", index([referrer(i) for i in range(fill_referrers)]))
local = [dict(referrer(0), size=1234, artifactType="application/vnd.oci.image.config.v1+json"),
         {"mediaType": MANIFEST, "digest": sha("local-only"), "size": 512,
          "artifactType": TYPES[3]}]
write("core/local.json", index(local))
write("core/systeminfo.json", json.dumps({"harbor_version": "v2.15.2-bench"}))
write("core/project.json", json.dumps({"project_id": 2, "name": "bench-proxy", "registry_id": 1,
                                       "metadata": {"public": "false"}}))
write("core/registry.json", json.dumps({"id": 1, "name": "bench-upstream", "type": "docker-registry",
                                        "url": f"http://127.0.0.1:{upstream_port}",
                                        "insecure": True, "status": "healthy"}))
for n in (10, 100, 1000):
    write(f"subject-{n}", sha(f"subject-{n}"))
write("subject-cold", sha("subject-cold"))
write("fill-urls", "".join(f'url = "/v2/bench-proxy/fill/referrers/{sha(f"fill-{i}")}"\n'
                           'output = "/dev/null"\n' for i in range(fill_subjects)))

keys = ["Basic " + base64.b64encode(f"bench-{i}:bench-password".encode()).decode()
        for i in range(callers)]
write("auth", f"Authorization: {keys[0]}")
write("callers.txt", "".join(f"{key}\n" for key in keys))
write("callers.map", "".join(f'"{key}" 1;\n' for key in keys))
lua = """-- wrk's script: each request's credentials and encoding; exact counts at the end.
-- Arguments: the callers' pool per thread (1: every request as the first caller) and the
-- encoding accepted (identity or gzip).
local callers = {%s}
local threads, index, pool, counter, headers = 0, 0, 1, 0, {}

function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

function init(args)
  pool = tonumber(args[1])
  -- With a pool of one, every thread is the first caller; else each has callers of its own.
  index = pool > 1 and thread_index * pool or 0
  if args[2] == "gzip" then headers["Accept-Encoding"] = "gzip" end
end

function request()
  headers["Authorization"] = callers[index + counter %% pool + 1]
  counter = counter + 1
  return wrk.format(nil, nil, headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("wrk requests=%%d bytes=%%d duration_us=%%d p50_us=%%d p99_us=%%d errors=%%d\\n",
    summary.requests, summary.bytes, summary.duration, latency:percentile(50),
    latency:percentile(99), e.status + e.connect + e.read + e.write + e.timeout))
end
""" % ",\n  ".join(f'"{key}"' for key in keys)
write("callers.lua", lua)
EOF
  auth=$(<"$work/auth")
  mkdir -p "$work/merged"

  cat >"$work/backends.conf" <<EOF
worker_processes auto;
pid $work/backends.pid;
events { worker_connections 4096; }
http {
  access_log off;
  types { }
  default_type application/json;
  keepalive_requests 1000000;
  log_format calls '\$request_method \$request_uri \$status';
  map_hash_max_size 16384;
  map_hash_bucket_size 128;
  map \$http_authorization \$caller_known {
    default 0;
    include $work/callers.map;
  }
  # Harbor core's stand-in: it authorizes the caller with the referrers request itself.
  server {
    listen 127.0.0.1:$core_port;
    root $work/core;
    location = /stub_status { stub_status; }
    location ~ "^/v2/.+/referrers/sha256:[0-9a-f]{64}\$" {
      if (\$caller_known = 0) {
        add_header WWW-Authenticate 'Basic realm="harbor"' always;
        return 401 '{"errors":[{"code":"UNAUTHORIZED","message":"unauthorized"}]}';
      }
      default_type $INDEX_TYPE;
      try_files /local.json =404;
    }
    location = /api/v2.0/systeminfo { try_files /systeminfo.json =404; }
    location = /api/v2.0/projects/bench-proxy { try_files /project.json =404; }
    location = /api/v2.0/registries/1 { try_files /registry.json =404; }
  }
  # The upstream registry; its access log counts the sidecar's calls.
  server {
    listen 127.0.0.1:$upstream_port;
    root $work/upstream;
    access_log $work/upstream-access.log calls;
    location = /v2/ { return 200 '{}'; }
    location ~ "^/v2/(?<repo>[a-z0-9]+)/referrers/sha256:[0-9a-f]{64}\$" {
      default_type $INDEX_TYPE;
      try_files /\$repo.json =404;
    }
  }
}
EOF
  cat >"$work/front.conf" <<EOF
worker_processes auto;
pid $work/front.pid;
events { worker_connections 4096; }
http {
  access_log off;
  types { }
  keepalive_requests 1000000;
  map_hash_max_size 16384;
  map_hash_bucket_size 128;
  map \$http_authorization \$caller_known {
    default 0;
    include $work/callers.map;
  }
  # (a) The sidecar's answer from a file.
  server {
    listen 127.0.0.1:$front_port;
    root $work/merged;
    location ~ ^/v2/bench-proxy/(?<repo>r[0-9]+)/referrers/ {
      default_type $INDEX_TYPE;
      try_files /\$repo.json =404;
    }
  }
  # (b) The same-bytes hop: every request goes over a kept-alive connection to a backend that
  # authorizes the caller and answers the sidecar's bytes from a file; the compressed file,
  # the sidecar's own gzip answer, where the caller accepts gzip.
  upstream answers {
    server 127.0.0.1:$answers_port;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$hop_port;
    location / {
      proxy_pass http://answers;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # Room for the largest answer (1,000 referrers) in memory, not in a temporary file.
      proxy_buffer_size 16k;
      proxy_buffers 32 16k;
    }
  }
  server {
    listen 127.0.0.1:$answers_port;
    root $work/merged;
    gzip_static on;
    gzip_vary on;
    location ~ ^/v2/bench-proxy/(?<repo>r[0-9]+)/referrers/ {
      if (\$caller_known = 0) { return 401; }
      default_type $INDEX_TYPE;
      try_files /\$repo.json =404;
    }
  }
}
EOF
  # As shipped (JSON access log at info, the answer memo at its default), with listeners on
  # loopback and an in-process tier large enough that filling it evicts nothing. Replica A adds
  # the shared Redis tier, as more than one replica needs; replica B shares it and keeps
  # nothing in process. The burst's replica asks the slow core.
  local tier="cache:
  memory_max_bytes: 4294967296"
  local redis="  backend: redis
  redis_url: redis://127.0.0.1:$redis_port/10"
  printf '%s\n%s\n' "$(sidecar_config_head bench)" "$tier" >"$work/sidecar.yaml"
  printf '%s\n%s\n  answer_memo_bytes: 0\n' "$(sidecar_config_head bench)" "$tier" >"$work/no-memo.yaml"
  printf '%s\n%s\n%s\n' "$(sidecar_config_head bench)" "$tier" "$redis" >"$work/replica-a.yaml"
  printf '%s\ncache:\n  memory_max_bytes: 0\n%s\n' "$(sidecar_config_head bench)" "$redis" >"$work/replica-b.yaml"
  printf '%s\n%s\n' "$(sidecar_config_head bench "$slow_core_port")" "$tier" >"$work/burst.yaml"
  start_nginx backends
  start_nginx front
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
    >"$work/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 1 100); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
  {
    echo "date=$(date -u +%Y-%m-%dT%H:%MZ)"
    echo "machine=$(nproc) cores ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), Linux $(uname -r)"
    echo "cores=$(nproc)"
    echo "loadavg_before=$loadavg_before"
    echo "commit=$(code_commit)"
    echo "versions=$("$sidecar_bin" --version)${BENCH_SIDECAR_BIN:+ (the binary $BENCH_SIDECAR_BIN)}, $(rustc --version | cut -d' ' -f1-2), $(nginx -v 2>&1 | cut -d' ' -f3), $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2), Redis $(redis-server --version | cut -d' ' -f3 | cut -d= -f2), curl $(curl --version | head -n 1 | cut -d' ' -f2)"
    echo "method=wrk -t2 -c$connections -d${seconds}s"
    echo "connections=$connections"
    echo "memo_bytes=$memo_bytes"
  } >"$work/results"
}

# Caches each subject's list through the running sidecar and keeps its answer (and its gzip
# form) where (a) and (b) serve them; checks that the hop carries the same bytes.
warm_answers() {
  local n path
  for n in 10 100 1000; do
    path="/v2/bench-proxy/r$n/referrers/$(<"$work/subject-$n")"
    fetch_checked "$path" $((n + 1)) "$work/merged/r$n.json" "$work/merged/r$n.json.gz"
    curl -sf -H "$auth" "http://127.0.0.1:$hop_port$path" | cmp -s - "$work/merged/r$n.json" ||
      die "the hop's answer at $n referrers is not the sidecar's"
    curl -sf -H "$auth" -H 'Accept-Encoding: gzip' "http://127.0.0.1:$hop_port$path" |
      cmp -s - "$work/merged/r$n.json.gz" || die "the hop's gzip answer at $n referrers is not the sidecar's"
  done
}

# (b), (c) and (d) at each number of referrers in $@; with `gzip`, (b) and (c) at 100 with
# gzip accepted.
load_hits() {
  local gzip=$1 n path front_pids
  shift
  front_pids=$(nginx_workers "$work/front.pid")
  for n in "$@"; do
    path="/v2/bench-proxy/r$n/referrers/$(<"$work/subject-$n")"
    # shellcheck disable=SC2086 # PID lists are words.
    load "hop.$n" distinct "http://127.0.0.1:$hop_port$path" $front_pids
    load_sidecar "sidecar.$n" distinct "$path"
    load_sidecar "one.$n" one "$path"
  done
  [ "$gzip" = gzip ] || return 0
  path="/v2/bench-proxy/r100/referrers/$(<"$work/subject-100")"
  # shellcheck disable=SC2086
  load hop_gzip.100 distinct+gzip "http://127.0.0.1:$hop_port$path" $front_pids
  load_sidecar sidecar_gzip.100 distinct+gzip "$path"
}

run_hop() {
  prepare_load
  start_sidecar sidecar
  warm_answers
  load_hits gzip 10 100
  stop_sidecar
  result loadavg_after "$(cut -d' ' -f1-3 /proc/loadavg)"
  render "$work/results"
}

# The hit of replica B, whose in-process tier holds nothing: replica A (running) stored the
# lists in Redis; it is stopped, B started on its ports, and its hit at 100 referrers loaded.
load_redis_tier() {
  local path hits_before commands_before
  path="/v2/bench-proxy/r100/referrers/$(<"$work/subject-100")"
  stop_sidecar
  start_sidecar replica-b
  fetch_checked "$path" 101 "$work/check.json"
  cmp -s "$work/check.json" "$work/merged/r100.json" || die "replica B's answer is not replica A's"
  hits_before=$(metric 'harbor_referrers_cache_lookups_total{result="hit",tier="redis"}')
  commands_before=$(redis_commands)
  load_sidecar redis.100 distinct "$path"
  result redis.100.redis_hits $(($(metric 'harbor_referrers_cache_lookups_total{result="hit",tier="redis"}') - hits_before))
  result redis.100.redis_commands $(($(redis_commands) - commands_before))
  result redis.100.memory_entries "$(metric harbor_referrers_cache_memory_entries)"
  stop_sidecar
}

# Core's stand-in for the burst: a small asyncio server that answers as the nginx stand-in does
# (it authorizes the same callers) but takes $core_delay_ms per referrers answer, and counts
# the referrers calls it got (GET /calls).
start_slow_core() {
  python3 - "$work" "$slow_core_port" "$core_delay_ms" >"$work/slow-core.log" 2>&1 <<'EOF' &
import asyncio, pathlib, re, sys, urllib.parse
work, port, delay = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) / 1000
callers = set((work / "callers.txt").read_text().split("\n")) - {""}
files = {"/api/v2.0/systeminfo": "systeminfo.json", "/api/v2.0/projects/bench-proxy": "project.json",
         "/api/v2.0/registries/1": "registry.json"}
REFERRERS = re.compile(r"/v2/.+/referrers/sha256:[0-9a-f]{64}")
INDEX = "application/vnd.oci.image.index.v1+json"
local = (work / "core/local.json").read_bytes()
calls = 0

async def answer(method, path, headers):
    global calls
    if path == "/calls":
        return 200, "text/plain", str(calls).encode()
    if REFERRERS.fullmatch(path):
        calls += 1
        await asyncio.sleep(delay)
        if headers.get("authorization") not in callers:
            return 401, "application/json", b'{"errors":[{"code":"UNAUTHORIZED"}]}'
        return 200, INDEX, local
    if path in files:
        return 200, "application/json", (work / "core" / files[path]).read_bytes()
    return 404, "text/plain", b"not found"

async def serve(reader, writer):
    try:
        while True:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, target, _ = head[0].split(" ", 2)
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            path = urllib.parse.unquote(target.split("?")[0])
            status, kind, body = await answer(method, path, headers)
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode()
                         + (b"" if method == "HEAD" else body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    await server.serve_forever()

asyncio.run(main())
EOF
  slow_core_pid=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$slow_core_port/calls" >/dev/null && return
    sleep 0.05
  done
  die "the slow core did not start: $(cat "$work/slow-core.log")"
}

slow_core_calls() {
  curl -sf "http://127.0.0.1:$slow_core_port/calls"
}

# $burst_requests identical requests at once to port $1 for $2; prints `answered=… p50_ms=…
# p99_ms=… max_ms=…`. Every connection is opened first, then every request sent; each is timed
# from its sending to the end of its answer. One epoll loop reads them all: a Python client
# with a task per request took longer than the answers.
burst_get() {
  python3 - "$1" "$2" "$auth" "$burst_requests" <<'EOF'
import select, socket, sys, time
port, path, auth, count = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}\r\n\r\n".encode()
sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
poll = select.epoll()
for s in sockets:
    s.setblocking(False)
    poll.register(s.fileno(), select.EPOLLIN)
# Each: the socket, what it read, (status, the answer's length) once its head is in, sent at.
reading = {}
for s in sockets:
    reading[s.fileno()] = [s, bytearray(), None, time.monotonic()]
    s.send(request)
answers = []
while len(answers) < count:
    for fd, _ in poll.poll(30):
        entry = reading[fd]
        chunk = entry[0].recv(1 << 20)
        if not chunk:
            sys.exit("burst: a connection closed before its answer")
        entry[1] += chunk
        if entry[2] is None and (end := entry[1].find(b"\r\n\r\n")) >= 0:
            head = entry[1][:end].decode("latin-1").split("\r\n")
            length = next(int(line.split(":", 1)[1]) for line in head
                          if line.lower().startswith("content-length:"))
            entry[2] = (head[0].split(" ")[1], end + 4 + length)
        if entry[2] is not None and len(entry[1]) >= entry[2][1]:
            answers.append((entry[2][0], time.monotonic() - entry[3]))
            poll.unregister(fd)
times = sorted(took for _, took in answers)
pick = lambda q: times[min(len(times) - 1, int(q * len(times)))] * 1000
print(f"answered={sum(status == '200' for status, _ in answers)} p50_ms={pick(0.50):.1f} "
      f"p99_ms={pick(0.99):.1f} max_ms={times[-1] * 1000:.1f}")
EOF
}

# The burst: a replica asking the slow core gets $burst_requests identical requests at once for
# a cached list (100 referrers); then, as the floor the client and the machine set, the same
# burst to (a), nginx serving that answer from a file.
run_burst_part() {
  local path calls_before shared_before out answered p50_ms p99_ms max_ms
  path="/v2/bench-proxy/r100/referrers/$(<"$work/subject-100")"
  start_slow_core
  start_sidecar burst
  fetch_checked "$path" 101 "$work/merged/r100.json"
  calls_before=$(slow_core_calls)
  shared_before=$(metric harbor_referrers_core_calls_coalesced_total)
  out=$(burst_get "$sidecar_port" "$path")
  eval "$out"
  [ "$answered" = "$burst_requests" ] || die "burst: $answered of $burst_requests requests answered 200"
  result burst.requests "$burst_requests"
  result burst.core_delay_ms "$core_delay_ms"
  result burst.core_calls $(($(slow_core_calls) - calls_before))
  result burst.shared $(($(metric harbor_referrers_core_calls_coalesced_total) - shared_before))
  result burst.p50_ms "$p50_ms"
  result burst.p99_ms "$p99_ms"
  result burst.max_ms "$max_ms"
  printf 'burst: %s\n' "$out" >&2
  stop_sidecar
  kill "$slow_core_pid"
  wait "$slow_core_pid" 2>/dev/null || true
  slow_core_pid=

  out=$(burst_get "$front_port" "$path")
  eval "$out"
  [ "$answered" = "$burst_requests" ] || die "burst to nginx: $answered of $burst_requests requests answered 200"
  result burst_static.p50_ms "$p50_ms"
  result burst_static.p99_ms "$p99_ms"
  result burst_static.max_ms "$max_ms"
  printf 'burst to nginx: %s\n' "$out" >&2
}

run_burst() {
  prepare_load
  run_burst_part
  result loadavg_after "$(cut -d' ' -f1-3 /proc/loadavg)"
  render "$work/results"
}

run_load() {
  prepare_load
  local n path front_pids upstream_before commands_before rss_load=0 rss cold urls answered

  # Start-up and idle memory as shipped; then replica A, the cache warmed with each subject's
  # list.
  measure_start
  stop_sidecar
  start_sidecar replica-a
  warm_answers

  upstream_before=$(upstream_referrers_calls)
  commands_before=$(redis_commands)
  front_pids=$(nginx_workers "$work/front.pid")
  for n in 10 100 1000; do
    path="/v2/bench-proxy/r$n/referrers/$(<"$work/subject-$n")"
    # shellcheck disable=SC2086 # PID lists are words.
    load "static.$n" one "http://127.0.0.1:$front_port$path" $front_pids
    load_hits no-gzip "$n"
    rss=$(rss_kib "$sidecar_pid" VmRSS)
    [ "$rss" -le "$rss_load" ] || rss_load=$rss
  done
  load_hits gzip
  result steady_upstream_calls $(($(upstream_referrers_calls) - upstream_before))
  # Less one: the INFO that read the count before.
  result steady_redis_commands $(($(redis_commands) - commands_before - 1))
  # The kernel's peak may lag a sample taken just before: the larger of the two.
  rss=$(rss_kib "$sidecar_pid" VmHWM)
  [ "$rss" -le "$rss_load" ] || rss_load=$rss
  result load_rss_kib "$rss_load"

  # The cold stampede: 200 requests at once for a subject nobody asked for yet.
  cold=$(<"$work/subject-cold")
  urls=$work/stampede-urls
  for _ in $(seq 1 200); do
    printf 'url = "http://127.0.0.1:%s/v2/bench-proxy/r10/referrers/%s"\noutput = "/dev/null"\n' \
      "$sidecar_port" "$cold"
  done >"$urls"
  answered=$(parallel_get "$urls" 200)
  [ "$answered" = 200 ] || die "stampede: $answered of 200 requests answered 200"
  result stampede_upstream_calls "$(upstream_referrers_calls "/referrers/$cold")"

  load_redis_tier
  run_burst_part
  result sidecar_errors "$(grep -c '"level":"ERROR"' "$work/sidecar.log" || true)"

  measure_fill sidecar fill
  measure_fill no-memo fill_no_memo
  result loadavg_after "$(cut -d' ' -f1-3 /proc/loadavg)"

  render "$work/results" >"$work/table.md"
  write_section load "$work/table.md"
}

# Starts the sidecar as shipped: the time to ready, and its memory and threads when idle.
measure_start() {
  start_sidecar sidecar
  result ready_ms "$ready_ms"
  result idle_rss_kib "$(rss_kib "$sidecar_pid" VmRSS)"
  result idle_anon_kib "$(smaps_kib "$sidecar_pid" Anonymous)"
  result idle_threads "$(awk '$1 == "Threads:" {print $2}' "/proc/$sidecar_pid/status")"
}

# Memory per cached descriptor, in a fresh process with configuration $1, recorded as "$2.*":
# RSS after one list is cached, then after the fill (every subject a miss: one core call, one
# upstream call, one stored list).
measure_fill() {
  local config=$1 label=$2 rss_before_fill answered
  start_sidecar "$config"
  result "$label.ready_ms" "$ready_ms"
  fetch_checked "/v2/bench-proxy/r10/referrers/$(<"$work/subject-10")" 11 "$work/check.json"
  rss_before_fill=$(rss_kib "$sidecar_pid" VmRSS)
  sed "s|^url = \"|url = \"http://127.0.0.1:$sidecar_port|" "$work/fill-urls" >"$work/fill-urls-full"
  answered=$(parallel_get "$work/fill-urls-full" 16)
  [ "$answered" = "$fill_subjects" ] || die "fill: $answered of $fill_subjects requests answered 200"
  result "$label.rss_before_kib" "$rss_before_fill"
  result "$label.rss_after_kib" "$(rss_kib "$sidecar_pid" VmRSS)"
  result "$label.anon_after_kib" "$(smaps_kib "$sidecar_pid" Anonymous)"
  result "$label.descriptors" $((fill_subjects * fill_referrers))
  result "$label.entries" "$(metric harbor_referrers_cache_memory_entries)"
  result "$label.weighed_bytes" "$(metric harbor_referrers_cache_memory_bytes)"
  result "$label.evictions" "$(metric harbor_referrers_cache_evictions_total)"
  stop_sidecar
}

# A field of /proc/<pid>/smaps_rollup in KiB (Anonymous: the heap and stacks, not the binary).
smaps_kib() {
  awk -v key="$2:" '$1 == key {print $2}' "/proc/$1/smaps_rollup"
}

run_memory() {
  prepare_load
  measure_start
  stop_sidecar
  measure_fill sidecar fill
  measure_fill no-memo fill_no_memo
  result loadavg_after "$(cut -d' ' -f1-3 /proc/loadavg)"
  render "$work/results"
}

# The tables, ratios and targets from the run's results: each part whose numbers the run has.
render() {
  python3 - "$1" <<'EOF'
import sys
r = dict(line.rstrip("\n").split("=", 1) for line in open(sys.argv[1]))
num = lambda key: float(r[key])
has = lambda key: key in r
mb = lambda kib: f"{float(kib) / 1024:.1f} MiB"
rps = lambda t: f"{num(t + '.rps'):,.0f} req/s" if has(t + ".rps") else "—"
ratio = lambda a, b: num(a + ".rps") / num(b + ".rps")

def cells(field, fmt, *runs):
    return " / ".join(fmt.format(num(f"{t}.{field}")) if has(f"{t}.{field}") else "—"
                      for t in runs)

counts = [n for n in (10, 100, 1000) if has(f"sidecar.{n}.rps")]

busy = float(r["loadavg_before"].split()[0]) > float(r["cores"])
print(f"Run on {r['date']}: {r['machine']}; load average (1, 5, 15 min) {r['loadavg_before']} "
      f"before the run and {r['loadavg_after']} after it"
      + (": **other work competed for the CPU, so this run is a trial**" if busy else "")
      + ".  ")
print(f"Code at commit {r['commit']}; {r['versions']}.  ")
print(f"Method: `{r['method']}` with a Lua script that sets each request's credentials and "
      "encoding, for each target, in one run on loopback; p50 and p99 from wrk's histogram; "
      "CPU per request = user+sys ticks of the serving processes (`/proc/<pid>/stat`, all "
      "threads; nginx: its workers) over the run ÷ requests; bytes per answer = bytes wrk "
      "read ÷ answers (headers and body).")

if counts:
    print()
    print("| referrers upstream | (a) nginx static file | (b) same-bytes hop | "
          "(c) hit, distinct callers | (c) ÷ (b) | (d) hit, one caller | (d) ÷ (b) | "
          "p99 (b) / (c) / (d) | CPU per request (a) / (b) / (c) / (d) | "
          "bytes per answer (b) / (c) | calls to core shared (c) / (d) | "
          "core connections opened (c) / (d) | errors (b) / (c) / (d) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in counts:
        print(f"| {n} | {rps(f'static.{n}')} | {rps(f'hop.{n}')} | {rps(f'sidecar.{n}')} | "
              f"{ratio(f'sidecar.{n}', f'hop.{n}'):.2f}× | {rps(f'one.{n}')} | "
              f"{ratio(f'one.{n}', f'hop.{n}'):.2f}× | "
              + cells("p99_ms", "{:.1f}", f"hop.{n}", f"sidecar.{n}", f"one.{n}") + " ms | "
              + cells("cpu_us", "{:.0f}", f"static.{n}", f"hop.{n}", f"sidecar.{n}", f"one.{n}")
              + " µs | " + cells("bytes", "{:,.0f}", f"hop.{n}", f"sidecar.{n}") + " | "
              + cells("shared", "{:,.0f}", f"sidecar.{n}", f"one.{n}") + " | "
              + cells("core_connections", "{:.0f}", f"sidecar.{n}", f"one.{n}") + " | "
              + cells("errors", "{:.0f}", f"hop.{n}", f"sidecar.{n}", f"one.{n}") + " |")

if has("sidecar_gzip.100.rps"):
    print()
    print("| 100 referrers, distinct callers | (b) same-bytes hop | (c) hit | (c) ÷ (b) | "
          "p99 (b) / (c) | CPU per request (b) / (c) | bytes per answer (b) / (c) | "
          "errors (b) / (c) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, hop, hit in (("identity", "hop.100", "sidecar.100"),
                           ("gzip accepted", "hop_gzip.100", "sidecar_gzip.100")):
        print(f"| {name} | {rps(hop)} | {rps(hit)} | {ratio(hit, hop):.2f}× | "
              + cells("p99_ms", "{:.1f}", hop, hit) + " ms | "
              + cells("cpu_us", "{:.0f}", hop, hit) + " µs | "
              + cells("bytes", "{:,.0f}", hop, hit) + " | "
              + cells("errors", "{:.0f}", hop, hit) + " |")

if has("redis.100.rps"):
    print()
    print("| 100 referrers, distinct callers | in-process hit (replica A) | "
          "Redis-tier hit (replica B) | B ÷ A | p99 A / B | CPU per request A / B | "
          "replica B: Redis hits, Redis commands, in-process entries | errors A / B |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| identity | {rps('sidecar.100')} | {rps('redis.100')} | "
          f"{ratio('redis.100', 'sidecar.100'):.2f}× | "
          + cells("p99_ms", "{:.1f}", "sidecar.100", "redis.100") + " ms | "
          + cells("cpu_us", "{:.0f}", "sidecar.100", "redis.100") + " µs | "
          f"{num('redis.100.redis_hits'):,.0f}, {num('redis.100.redis_commands'):,.0f}, "
          f"{r['redis.100.memory_entries']} | "
          + cells("errors", "{:.0f}", "sidecar.100", "redis.100") + " |")

notes = []
if has("ready_ms"):
    notes.append(f"Ready (`/readyz` 200) after start: {r['ready_ms']} ms, and "
                 f"{r['fill.ready_ms']} ms at a later start (polled every millisecond).")
    notes.append(f"RSS: {mb(r['idle_rss_kib'])} idle after start ({mb(r['idle_anon_kib'])} of it "
                 f"anonymous, the rest pages of the binary and its libraries; "
                 f"{r['idle_threads']} threads)"
                 + (f", {mb(r['load_rss_kib'])} under load (replica A's peak over the "
                    "cache-hit runs)." if has("load_rss_kib") else "."))
if has("stampede_upstream_calls"):
    notes.append(f"Cold stampede: 200 concurrent requests for one uncached subject made "
                 f"{r['stampede_upstream_calls']} upstream referrers call(s). While the "
                 f"cache-hit runs of replica A lasted: {r['steady_upstream_calls']} upstream "
                 f"calls, {r['steady_redis_commands']} Redis commands. Error lines logged: "
                 f"{r['sidecar_errors']}.")
if has("burst.core_calls"):
    notes.append(f"Burst: {r['burst.requests']} identical requests at once (the connections "
                 "opened first, then every request sent) for a cached list of 100 referrers, "
                 f"to a replica whose core takes {r['burst.core_delay_ms']} ms per referrers "
                 f"answer: core got {r['burst.core_calls']} referrers call(s) (the sidecar "
                 f"counted {r['burst.shared']} requests sharing a call); p50 "
                 f"{r['burst.p50_ms']} ms, p99 {r['burst.p99_ms']} ms, slowest "
                 f"{r['burst.max_ms']} ms, each from its sending to the end of its answer. The same "
                 f"burst to (a), nginx serving that answer from a file: p50 "
                 f"{r['burst_static.p50_ms']} ms, p99 {r['burst_static.p99_ms']} ms, slowest "
                 f"{r['burst_static.max_ms']} ms (what the client and the machine allow).")


def per_descriptor(label, less_kib=0.0):
    return ((num(f"{label}.rss_after_kib") - num(f"{label}.rss_before_kib") - less_kib) * 1024
            / num(f"{label}.descriptors"))


memo_kib = num("memo_bytes") / 1024
if has("fill.rss_after_kib"):
    memo_share = num("fill.rss_after_kib") - num("fill_no_memo.rss_after_kib")
    notes.append(
        f"Memory per cached descriptor: {int(num('fill.descriptors') / 10):,} subjects × 10 "
        f"referrers, every one a miss, in a fresh process. Memo on (as shipped): RSS from "
        f"{mb(r['fill.rss_before_kib'])} to {mb(r['fill.rss_after_kib'])}, "
        f"{per_descriptor('fill', memo_kib):.0f} bytes per descriptor once the memo's bound "
        f"({mb(memo_kib)}) is taken off. Memo off: from {mb(r['fill_no_memo.rss_before_kib'])} "
        f"to {mb(r['fill_no_memo.rss_after_kib'])}, {per_descriptor('fill_no_memo'):.0f} bytes "
        f"per descriptor; the memo took {mb(memo_share)}. The tier weighs a descriptor at "
        f"{num('fill.weighed_bytes') / num('fill.descriptors'):.0f} bytes; "
        f"{r['fill.entries']} entries, {r['fill.evictions']} evicted.")
if notes:
    print()
    print("\n".join(f"- {note}" for note in notes))

targets = []


def target(text, value, ok):
    targets.append(f"| {text} | {value} | {'met' if ok else '**not met**'} |")


for n in counts:
    x = ratio(f"sidecar.{n}", f"hop.{n}")
    target(f"distinct callers: hit ≥ 0.6× the same-bytes hop at {n} referrers", f"{x:.3f}×",
           x >= 0.6)
if has("sidecar.100.cpu_us"):
    cpu = num("sidecar.100.cpu_us")
    target("distinct callers: sidecar CPU per hit ≤ 35 µs at 100 referrers", f"{cpu:.1f} µs",
           cpu <= 35)
if has("one.100.rps"):
    x = ratio("one.100", "hop.100")
    target("one caller: hit ≥ 1.0× the same-bytes hop at 100 referrers", f"{x:.3f}×", x >= 1.0)
if has("sidecar_gzip.100.rps"):
    gz, ident = num("sidecar_gzip.100.bytes"), num("sidecar.100.bytes")
    target("gzip accepted, 100 referrers: bytes on the wire ≤ 1/4 of identity",
           f"{gz:,.0f} of {ident:,.0f} bytes ({gz / ident:.3f})", gz * 4 <= ident)
    gz, ident = num("sidecar_gzip.100.cpu_us"), num("sidecar.100.cpu_us")
    target("gzip accepted, 100 referrers: the hit's CPU no higher than identity's",
           f"{gz:.1f} µs (identity: {ident:.1f} µs)", gz <= ident)
if has("burst.core_calls"):
    calls = num("burst.core_calls")
    target("burst of 500 identical requests, core 20 ms: at most 25 calls to core",
           f"{calls:.0f}", calls <= 25)
    p99 = num("burst.p99_ms")
    target("burst of 500 identical requests, core 20 ms: p99 under 100 ms", f"{p99:.1f} ms",
           p99 < 100)
if has("redis.100.rps"):
    x = ratio("redis.100", "sidecar.100")
    target("Redis-tier hit ≥ 0.5× an in-process hit at 100 referrers", f"{x:.3f}×", x >= 0.5)
hits = [f"{t}.{n}" for n in counts for t in ("sidecar", "one")]
hits += [t for t in ("sidecar_gzip.100", "redis.100") if has(f"{t}.rps")]
if hits:
    worst = max(hits, key=lambda t: num(f"{t}.p99_ms"))
    p99 = num(f"{worst}.p99_ms")
    target(f"p99 ≤ 10 ms at {r['connections']} connections in every hit row ({len(hits)} rows)",
           f"highest: {p99:.2f} ms (`{worst}`)", p99 <= 10)
loads = sorted(key[: -len(".errors")] for key in r if key.endswith(".errors"))
if loads:
    failed = sum(num(f"{t}.errors") for t in loads)
    target(f"every request answered 200 in every load row ({len(loads)} rows)",
           f"{failed:.0f} not", failed == 0)
if has("fill.rss_after_kib"):
    on, off = per_descriptor("fill", memo_kib), per_descriptor("fill_no_memo")
    evicted = num("fill.evictions") + num("fill_no_memo.evictions")
    target(f"memory per cached descriptor ≤ 450 bytes with the memo on, its bound "
           f"({mb(memo_kib)}) counted separately", f"{on:.1f} bytes", on <= 450 and evicted == 0)
    target("the same with the memo off: what the tier alone takes", f"{off:.1f} bytes",
           off <= 450 and evicted == 0)
if has("idle_rss_kib"):
    target("idle RSS ≤ 15 MiB", mb(r["idle_rss_kib"]), num("idle_rss_kib") <= 15 * 1024)
    ready = max(num("ready_ms"), num("fill.ready_ms"))
    target("ready ≤ 50 ms after start", f"{ready:.0f} ms", ready <= 50)
if has("steady_upstream_calls"):
    target("0 upstream calls at steady state", r["steady_upstream_calls"],
           num("steady_upstream_calls") == 0)
    target("1 upstream call for a cold stampede of 200", r["stampede_upstream_calls"],
           num("stampede_upstream_calls") == 1)
if targets:
    print()
    print("| target, with the access log on as shipped (judged on the exact numbers) | measured | |")
    print("|---|---:|---|")
    print("\n".join(targets))
EOF
}

case $what in
  hop) run_hop ;;
  burst) run_burst ;;
  memory) run_memory ;;
  criterion) run_criterion ;;
  load) run_load ;;
  all) run_criterion && run_load ;;
esac
