#!/usr/bin/env bash
# `make bench`: criterion's measurement of the answer's pure work, then one load run on
# loopback that puts the sidecar's cache hit next to nginx doing the least any server in its
# place must do. Both write their tables into docs/benchmarks.md between marker comments, so
# the numbers there are always a run's output, never typed by hand.
#
# The load run needs no test harness: nginx plays Harbor core (the referrers endpoint answering
# a small local list from a file, systeminfo, a proxy-cache project and its registry) and the
# upstream registry (N referrers from a file), all generated here. In one run, at 10, 100 and
# 1000 upstream referrers: (a) nginx serving the merged body from a file, (b) nginx as a
# reverse proxy in front of the core stand-in (one hop that asks a backend per request: the
# ceiling for anything shaped like the sidecar), (c) the core stand-in directly, (d) the
# sidecar's cache hit as shipped (JSON access log on). Then the cold stampede, RSS, time to
# ready and memory per cached descriptor. Compare ratios, not absolute numbers: wrk and every
# server share the machine's cores.
#
#   scripts/bench.sh [all|criterion|load|hop|memory]  (default: all)
#   BENCH_SECONDS: length of each wrk run (default 10)
#
# `hop` and `memory` are quick and write nothing. `hop` compares (b) the nginx hop and (d) the
# sidecar's cache hit at 10 and 100 referrers, with the connections core accepted during each
# sidecar run. `memory` prints the load run's start-up and memory numbers alone: time to
# ready, idle RSS and threads, and memory per cached descriptor.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
seconds=${BENCH_SECONDS:-10}
# The targets in the generated table are set at 64 connections.
connections=64
fill_subjects=10000
fill_referrers=10
doc=docs/benchmarks.md
# The criterion benches: release code without LTO (the bench profile inherits release), much
# faster to build. The sidecar under load is built as the image ships it (see prepare_load).
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
export CARGO_TARGET_DIR=$PWD/target/load
# shellcheck source=scripts/lib/loopback.sh
. scripts/lib/loopback.sh

case $what in all | criterion | load | hop | memory) ;; *)
  echo "usage: $0 [all|criterion|load|hop|memory]" >&2
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

cleanup() {
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

metric() {
  curl -sf "http://127.0.0.1:$metrics_port/metrics" | awk -v name="$1" '$1 == name {print $2}'
}

upstream_referrers_calls() {
  grep -c "${1:-/referrers/}" "$work/upstream-access.log" || true
}

core_accepts() {
  curl -sf "http://127.0.0.1:$core_port/stub_status" | awk 'NR == 3 {print $1}'
}

result() {
  printf '%s=%s\n' "$1" "$2" >>"$work/results"
}

# wrk against $2 as $1; CPU ticks of the PIDs after it are counted over the run.
load() {
  local label=$1 url=$2
  shift 2
  local before after out requests
  before=$(cpu_ticks "$@")
  out=$(wrk -t2 -c"$connections" -d"${seconds}s" --latency -H "$auth" "$url")
  after=$(cpu_ticks "$@")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  [ "${requests:-0}" -gt 0 ] || die "wrk made no request to $url: $out"
  result "$label.rps" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  result "$label.requests" "$requests"
  result "$label.p50_ms" "$(awk '$1 == "50%" {print $2}' <<<"$out" | ms)"
  result "$label.p99_ms" "$(awk '$1 == "99%" {print $2}' <<<"$out" | ms)"
  result "$label.errors" "$(awk '/Non-2xx/ {n += $5} /Socket errors/ {
    gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' <<<"$out")"
  result "$label.cpu_us" "$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" \
    -v n="$requests" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}')"
  printf '%-28s %s\n' "$label" "$(awk '/Requests\/sec/ {print $2 " req/s"}' <<<"$out")" >&2
}

# wrk's latency (850.00us, 1.23ms, 1.02s) in milliseconds.
ms() {
  awk '{v = $1 + 0; if ($1 ~ /us$/) v /= 1000; else if ($1 ~ /[0-9]s$/) v *= 1000; printf "%.2f", v}'
}

# GET through the sidecar; fails unless 200 with the expected number of descriptors.
fetch_checked() {
  local path=$1 expected=$2 out=$3 count
  curl -sf -H "$auth" -o "$out" "http://127.0.0.1:$sidecar_port$path" ||
    die "GET $path through the sidecar failed: $(tail -n 5 "$work/sidecar.log")"
  count=$(jq '.manifests | length' "$out")
  [ "$count" = "$expected" ] || die "$path: $count descriptors, expected $expected"
}

# One curl process making many requests, at most $2 at once; prints how many answered 200.
parallel_get() {
  local urls=$1 at_once=$2
  curl -s --no-progress-meter --parallel --parallel-immediate --parallel-max "$at_once" -H "$auth" \
    -w '%{http_code}\n' -K "$urls" | grep -c '^200$' || true
}

# Builds the sidecar, generates the data and configurations, and starts the nginx backends
# (core's stand-in, the upstream) and front (static file, hop).
prepare_load() {
  require_tools wrk nginx
  # The release profile the image ships (thin LTO, one codegen unit), in a target dir of its own.
  env -u CARGO_PROFILE_RELEASE_LTO -u CARGO_PROFILE_RELEASE_CODEGEN_UNITS \
    CARGO_TARGET_DIR="$PWD/target/shipped" cargo build -q --release --locked -p referrers-sidecar
  sidecar_bin=$PWD/target/shipped/release/referrers-sidecar
  local loadavg_before
  loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)

  make_work
  read -r core_port upstream_port front_port hop_port sidecar_port metrics_port < <(free_ports 6)
  auth="Authorization: Basic $(printf 'bench:bench-password' | base64)"

  # Subjects, the upstream's lists (list 10 ⊂ 100 ⊂ 1000, as one signer keeps adding), core's
  # local list (one referrer the upstream has too, as Harbor reports it, and one of its own)
  # and the REST answers the sidecar reads.
  python3 - "$work" "$upstream_port" "$fill_subjects" "$fill_referrers" <<'EOF'
import hashlib, json, pathlib, sys
work, upstream_port = pathlib.Path(sys.argv[1]), sys.argv[2]
fill_subjects, fill_referrers = int(sys.argv[3]), int(sys.argv[4])
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
EOF
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
  # Harbor core's stand-in.
  server {
    listen 127.0.0.1:$core_port;
    root $work/core;
    location = /stub_status { stub_status; }
    location ~ "^/v2/.+/referrers/sha256:[0-9a-f]{64}\$" {
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
  # (a) The merged answer, as the sidecar gave it, from a file.
  server {
    listen 127.0.0.1:$front_port;
    root $work/merged;
    location ~ ^/v2/bench-proxy/(?<repo>r[0-9]+)/referrers/ {
      default_type $INDEX_TYPE;
      try_files /\$repo.json =404;
    }
  }
  # (b) One hop: every request asks core's stand-in, over kept-alive connections.
  upstream core {
    server 127.0.0.1:$core_port;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$hop_port;
    location / {
      proxy_pass http://core;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
  # As shipped (JSON access log at info), but with listeners on loopback and an in-process tier
  # large enough that filling it evicts nothing.
  {
    sidecar_config_head bench
    cat <<EOF
cache:
  memory_max_bytes: 4294967296
EOF
  } >"$work/sidecar.yaml"
  start_nginx backends
  start_nginx front
  {
    echo "date=$(date -u +%Y-%m-%dT%H:%MZ)"
    echo "machine=$(nproc) cores ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), Linux $(uname -r)"
    echo "cores=$(nproc)"
    echo "loadavg_before=$loadavg_before"
    echo "commit=$(code_commit)"
    echo "versions=$("$sidecar_bin" --version), $(rustc --version | cut -d' ' -f1-2), $(nginx -v 2>&1 | cut -d' ' -f3), $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2), curl $(curl --version | head -n 1 | cut -d' ' -f2)"
    echo "method=wrk -t2 -c$connections -d${seconds}s --latency"
  } >"$work/results"
}

# Loads the sidecar's cache hit at `path` as "sidecar.<n>" and records how many connections core
# accepted meanwhile: with connections kept alive, none. A one-second run first fills the
# sidecar's pools of connections to core (a fresh process opens them as the load rises), so
# the count is that of the measured run alone.
load_sidecar() {
  local n=$1 path=$2 accepts_before accepts_after
  wrk -t2 -c"$connections" -d1s -H "$auth" "http://127.0.0.1:$sidecar_port$path" >/dev/null
  accepts_before=$(core_accepts)
  load "sidecar.$n" "http://127.0.0.1:$sidecar_port$path" "$sidecar_pid"
  accepts_after=$(core_accepts)
  # Less one: the second stub_status request's own connection.
  result "sidecar.$n.core_connections" $((accepts_after - accepts_before - 1))
}

run_hop() {
  prepare_load
  local n path front_pids
  start_sidecar
  front_pids=$(nginx_workers "$work/front.pid")
  for n in 10 100; do
    path="/v2/bench-proxy/r$n/referrers/$(<"$work/subject-$n")"
    fetch_checked "$path" $((n + 1)) "$work/merged/r$n.json"
    # shellcheck disable=SC2086 # PID lists are words.
    load "hop.$n" "http://127.0.0.1:$hop_port$path" $front_pids
    load_sidecar "$n" "$path"
  done
  stop_sidecar
  result loadavg_after "$(cut -d' ' -f1-3 /proc/loadavg)"
  python3 - "$work/results" <<'EOF'
import sys
r = dict(line.rstrip("\n").split("=", 1) for line in open(sys.argv[1]))
num = lambda key: float(r[key])
print(f"{r['date']}, {r['machine']}, load average {r['loadavg_before']} before, "
      f"{r['loadavg_after']} after; code at {r['commit']}; {r['method']}")
print("| referrers | (b) nginx hop | (d) sidecar hit | (d) ÷ (b) | p99 (b) / (d) | "
      "CPU per request (b) / (d) | core connections opened (d) |")
print("|---:|---:|---:|---:|---:|---:|---:|")
for n in (10, 100):
    print(f"| {n} | {num(f'hop.{n}.rps'):,.0f} req/s | {num(f'sidecar.{n}.rps'):,.0f} req/s | "
          f"{num(f'sidecar.{n}.rps') / num(f'hop.{n}.rps'):.2f}× | "
          f"{num(f'hop.{n}.p99_ms'):.1f} / {num(f'sidecar.{n}.p99_ms'):.1f} ms | "
          f"{num(f'hop.{n}.cpu_us'):.0f} / {num(f'sidecar.{n}.cpu_us'):.0f} µs | "
          f"{r[f'sidecar.{n}.core_connections']} |")
EOF
}

run_load() {
  prepare_load
  local n path front_pids core_pids
  local upstream_before rss_load=0 rss cold urls answered

  # Start-up, idle memory, then the cache warmed with each subject's list.
  measure_start
  for n in 10 100 1000; do
    fetch_checked "/v2/bench-proxy/r$n/referrers/$(<"$work/subject-$n")" $((n + 1)) "$work/merged/r$n.json"
  done

  front_pids=$(nginx_workers "$work/front.pid")
  core_pids=$(nginx_workers "$work/backends.pid")
  upstream_before=$(upstream_referrers_calls)
  for n in 10 100 1000; do
    path="/v2/bench-proxy/r$n/referrers/$(<"$work/subject-$n")"
    # shellcheck disable=SC2086 # PID lists are words.
    load "static.$n" "http://127.0.0.1:$front_port$path" $front_pids
    # shellcheck disable=SC2086
    load "hop.$n" "http://127.0.0.1:$hop_port$path" $front_pids
    # shellcheck disable=SC2086
    load "core.$n" "http://127.0.0.1:$core_port$path" $core_pids
    load_sidecar "$n" "$path"
    rss=$(rss_kib "$sidecar_pid" VmRSS)
    [ "$rss" -le "$rss_load" ] || rss_load=$rss
  done
  result steady_upstream_calls $(($(upstream_referrers_calls) - upstream_before))
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
  result sidecar_errors "$(grep -c '"level":"ERROR"' "$work/sidecar.log" || true)"
  stop_sidecar

  measure_fill
  result loadavg_after "$(cut -d' ' -f1-3 /proc/loadavg)"

  render_load "$work/results" >"$work/table.md"
  write_section load "$work/table.md"
}

# Starts the sidecar: the time to ready, and its memory and threads when idle.
measure_start() {
  start_sidecar
  result ready_ms "$ready_ms"
  result idle_rss_kib "$(rss_kib "$sidecar_pid" VmRSS)"
  result idle_anon_kib "$(smaps_kib "$sidecar_pid" Anonymous)"
  result idle_threads "$(awk '$1 == "Threads:" {print $2}' "/proc/$sidecar_pid/status")"
}

# Memory per cached descriptor, in a fresh process: RSS after one list is cached, then after
# the fill (every subject a miss: one core call, one upstream call, one stored list).
measure_fill() {
  local rss_before_fill answered
  start_sidecar
  result ready_ms_second_start "$ready_ms"
  fetch_checked "/v2/bench-proxy/r10/referrers/$(<"$work/subject-10")" 11 "$work/check.json"
  rss_before_fill=$(rss_kib "$sidecar_pid" VmRSS)
  sed "s|^url = \"|url = \"http://127.0.0.1:$sidecar_port|" "$work/fill-urls" >"$work/fill-urls-full"
  answered=$(parallel_get "$work/fill-urls-full" 16)
  [ "$answered" = "$fill_subjects" ] || die "fill: $answered of $fill_subjects requests answered 200"
  result fill_rss_before_kib "$rss_before_fill"
  result fill_rss_after_kib "$(rss_kib "$sidecar_pid" VmRSS)"
  result fill_anon_after_kib "$(smaps_kib "$sidecar_pid" Anonymous)"
  result fill_descriptors $((fill_subjects * fill_referrers))
  result fill_entries "$(metric harbor_referrers_cache_memory_entries)"
  result fill_weighed_bytes "$(metric harbor_referrers_cache_memory_bytes)"
  result fill_evictions "$(metric harbor_referrers_cache_evictions_total)"
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
  measure_fill
  python3 - "$work/results" <<'EOF'
import sys
r = dict(line.rstrip("\n").split("=", 1) for line in open(sys.argv[1]))
num = lambda key: float(r[key])
mb = lambda key: f"{num(key) / 1024:.1f} MiB"
per_descriptor = (num("fill_rss_after_kib") - num("fill_rss_before_kib")) * 1024 / num("fill_descriptors")
print(f"{r['date']}, {r['machine']}, load average {r['loadavg_before']} before; code at {r['commit']}")
print(f"ready: {r['ready_ms']} ms, {r['ready_ms_second_start']} ms at the second start")
print(f"idle: RSS {mb('idle_rss_kib')} (anonymous {mb('idle_anon_kib')}), {r['idle_threads']} threads")
print(f"fill: RSS {mb('fill_rss_before_kib')} -> {mb('fill_rss_after_kib')} (anonymous "
      f"{mb('fill_anon_after_kib')}): {per_descriptor:.0f} bytes per descriptor, weighed at "
      f"{num('fill_weighed_bytes') / num('fill_descriptors'):.0f}; {r['fill_entries']} entries, "
      f"{r['fill_evictions']} evicted")
EOF
}

# The table, ratios and targets from the run's results.
render_load() {
  python3 - "$1" <<'EOF'
import sys
r = dict(line.rstrip("\n").split("=", 1) for line in open(sys.argv[1]))
num = lambda key: float(r[key])
mb = lambda kib: f"{float(kib) / 1024:.1f} MiB"

busy = float(r["loadavg_before"].split()[0]) > float(r["cores"])
print(f"Run on {r['date']}: {r['machine']}; load average (1, 5, 15 min) {r['loadavg_before']} "
      f"before the run and {r['loadavg_after']} after it"
      + (": **other work competed for the CPU, so this run is a trial**" if busy else "")
      + ".  ")
print(f"Code at commit {r['commit']}; {r['versions']}.  ")
print(f"Method: `{r['method']}` for each target, in one run on loopback; "
      "CPU per request = user+sys ticks of the serving processes (`/proc/<pid>/stat`, all "
      "threads; nginx: its workers) over the run ÷ requests.")
print()
print("| referrers upstream | (a) nginx static file | (b) nginx hop | (c) core stand-in | "
      "(d) sidecar cache hit, access log on | (d) ÷ (b) | p99 (a) / (b) / (d) | "
      "CPU per request (a) / (b) / (d) | errors (d) | core connections opened (d) |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for n in (10, 100, 1000):
    rps = lambda t: f"{num(f'{t}.{n}.rps'):,.0f} req/s"
    print(f"| {n} | {rps('static')} | {rps('hop')} | {rps('core')} | {rps('sidecar')} | "
          f"{num(f'sidecar.{n}.rps') / num(f'hop.{n}.rps'):.2f}× | "
          + " / ".join(f"{num(f'{t}.{n}.p99_ms'):.1f}" for t in ("static", "hop", "sidecar"))
          + " ms | "
          + " / ".join(f"{num(f'{t}.{n}.cpu_us'):.0f}" for t in ("static", "hop", "sidecar"))
          + f" µs | {r[f'sidecar.{n}.errors']} | {r[f'sidecar.{n}.core_connections']} |")

per_descriptor = ((num("fill_rss_after_kib") - num("fill_rss_before_kib")) * 1024
                  / num("fill_descriptors"))
ready = max(num("ready_ms"), num("ready_ms_second_start"))
print()
print(f"- Ready (`/readyz` 200) after start: {r['ready_ms']} ms, and {r['ready_ms_second_start']} "
      "ms at the second start (polled every millisecond).")
print(f"- RSS: {mb(r['idle_rss_kib'])} idle after start ({mb(r['idle_anon_kib'])} of it anonymous, "
      f"the rest pages of the binary and its libraries; {r['idle_threads']} threads), "
      f"{mb(r['load_rss_kib'])} under load (the peak over the cache-hit runs).")
print(f"- Cold stampede: 200 concurrent requests for one uncached subject made "
      f"{r['stampede_upstream_calls']} upstream referrers call(s). Upstream calls while the "
      f"cache-hit runs lasted: {r['steady_upstream_calls']}. Error lines logged: "
      f"{r['sidecar_errors']}.")
print(f"- Memory per cached descriptor: {int(num('fill_descriptors') / 10):,} subjects × 10 "
      f"referrers took RSS from {mb(r['fill_rss_before_kib'])} to "
      f"{mb(r['fill_rss_after_kib'])}: {per_descriptor:.0f} bytes per descriptor "
      f"(the tier weighs them at {num('fill_weighed_bytes') / num('fill_descriptors'):.0f}; "
      f"{r['fill_entries']} entries, {r['fill_evictions']} evicted).")

def target(text, value, ok):
    print(f"| {text} | {value} | {'met' if ok else '**not met**'} |")

print()
print("| target, with the access log on as shipped | measured | |")
print("|---|---:|---|")
for n in (10, 100):
    ratio = num(f"sidecar.{n}.rps") / num(f"hop.{n}.rps")
    target(f"cache hit ≥ 0.5× the nginx hop at {n} referrers", f"{ratio:.2f}×", ratio >= 0.5)
for n in (10, 100):
    p99 = num(f"sidecar.{n}.p99_ms")
    # A busy machine stretches every tail: the hop's own p99 tells how far.
    target(f"p99 ≤ 10 ms at {n} referrers, 64 connections",
           f"{p99:.1f} ms (hop: {num(f'hop.{n}.p99_ms'):.1f} ms)", p99 <= 10)
for n, limit in ((10, 30), (100, 40)):
    cpu = num(f"sidecar.{n}.cpu_us")
    target(f"sidecar CPU per cache hit ≤ {limit} µs at {n} referrers", f"{cpu:.0f} µs",
           cpu <= limit)
target("≤ 512 bytes of RSS per cached descriptor", f"{per_descriptor:.0f} bytes",
       per_descriptor <= 512 and num("fill_evictions") == 0)
target("idle RSS ≤ 15 MiB", mb(r["idle_rss_kib"]), num("idle_rss_kib") <= 15 * 1024)
target("ready ≤ 50 ms after start", f"{ready:.0f} ms", ready <= 50)
target("0 upstream calls at steady state", r["steady_upstream_calls"],
       num("steady_upstream_calls") == 0)
target("1 upstream call for a cold stampede of 200", r["stampede_upstream_calls"],
       num("stampede_upstream_calls") == 1)
EOF
}

case $what in
  hop) run_hop ;;
  memory) run_memory ;;
  criterion) run_criterion ;;
  load) run_load ;;
  all) run_criterion && run_load ;;
esac
