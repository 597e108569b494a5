# shellcheck shell=bash disable=SC2154 # doc, work, sidecar_bin, sidecar_port: the caller's.
# What the scripts that run the sidecar on loopback share (scripts/bench.sh, scripts/soak.sh):
# the tools make setup installs, a scratch directory and the ports, nginx stand-ins, starting
# and stopping the sidecar, reading a process's memory, and writing a generated table into a
# doc between marker comments. Sourced, not run.
#
# The caller sets: `doc` (the doc write_section edits), `sidecar_bin`, `sidecar_port`
# (start_sidecar reads $work/sidecar.yaml and logs to $work/sidecar.log), and a `cleanup`
# function for make_work's exit trap (stop_loopback does the shared part).

# make setup (scripts/setup.sh) installs nginx, wrk and redis-server here.
export PATH="${REFERRERS_SIDECAR_TOOLS:-$HOME/.cache/referrers-sidecar/tools}/bin:$PATH"
# shellcheck disable=SC2034 # The scripts' nginx configurations use it.
INDEX_TYPE=application/vnd.oci.image.index.v1+json
work=
nginx_pids=()
sidecar_pid=

die() {
  echo "$(basename "$0" .sh): $*" >&2
  exit 1
}

# Fails unless every tool named is on PATH.
require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || die "$tool comes from make setup (scripts/setup.sh)"
  done
}

# Creates the scratch directory `work`, removed by the caller's `cleanup` at exit.
make_work() {
  work=$(mktemp -d)
  # nginx's workers drop root's rights (to nobody) and must read the generated files.
  chmod 755 "$work"
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

# Prints $1 distinct free ports on loopback, on one line (all bound at once, so none repeats).
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))
EOF
}

# Stops the sidecar and the nginx instances start_nginx started, and removes `work`.
stop_loopback() {
  local pid
  [ -z "$sidecar_pid" ] || stop_sidecar
  for pid in "${nginx_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${nginx_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -z "$work" ] || rm -rf "$work"
}

# Resident memory of a process in KiB: $2 is VmRSS (now) or VmHWM (peak).
rss_kib() {
  awk -v key="$2:" '$1 == key {print $2}' "/proc/$1/status"
}

# The last commit that changed the code (the scripts' own commits do not), and whether the
# work tree changes it further.
code_commit() {
  local code=(crates Cargo.toml Cargo.lock)
  printf '%s%s' "$(git log -1 --format=%h -- "${code[@]}")" \
    "$(git diff --quiet HEAD -- "${code[@]}" || echo ' (modified)')"
}

machine() {
  printf '%s cores (%s), Linux %s, load average before the run: %s' "$(nproc)" \
    "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)" "$(uname -r)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
}

# Prints the table in file $2 and puts it between `<!-- $1:begin -->` and `<!-- $1:end -->`
# in $doc.
write_section() {
  cat "$2"
  python3 - "$doc" "$1" "$2" <<'EOF'
import re, sys
path, name, table = sys.argv[1:4]
text = open(path).read()
begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
if not pattern.search(text):
    sys.exit(f"{path} has no {begin} ... {end} markers")
body = open(table).read().strip("\n")
text = pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text, count=1)
open(path, "w").write(text)
EOF
}

# The PIDs of an nginx master's workers (they do the serving); $1 is its pid file.
nginx_workers() {
  pgrep -P "$(<"$1")" | tr '\n' ' '
}

# Starts nginx with $work/$1.conf in the background (its pid file must be $work/$1.pid) and
# waits for its workers; appends its PID to nginx_pids.
start_nginx() {
  local name=$1
  nginx -p "$work" -c "$work/$name.conf" -e "$work/$name-error.log" -g 'daemon off;' &
  nginx_pids+=("$!")
  for _ in $(seq 1 100); do
    [ -s "$work/$name.pid" ] && [ -n "$(nginx_workers "$work/$name.pid")" ] && return
    sleep 0.05
  done
  die "nginx ($name) did not start: $(cat "$work/$name-error.log")"
}

# The head of the sidecar's configuration, on stdout: listeners on loopback, core's stand-in
# (at port $2, default $core_port), robot `robot$<name>` and project `<name>-proxy` enabled.
# Each script adds its `cache:`.
sidecar_config_head() {
  cat <<EOF
listen: "127.0.0.1:$sidecar_port"
metrics_listen: "127.0.0.1:$metrics_port"
harbor:
  url: http://127.0.0.1:${2:-$core_port}
  username: robot\$$1
  password: $1
projects:
  enabled: [$1-proxy]
EOF
}

# Starts the sidecar with $work/$1.yaml and polls /readyz every millisecond (a curl per poll
# would take longer than the start itself): sets sidecar_pid and ready_ms, the time from start
# to the first 200. It logs to $work/sidecar.log.
start_sidecar() {
  read -r sidecar_pid ready_ms < <(
    python3 - "$sidecar_bin" "$work" "$sidecar_port" "$1" <<'EOF'
import socket, subprocess, sys, time
binary, work, port, config = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
log = open(f"{work}/sidecar.log", "ab")
started = time.monotonic()
child = subprocess.Popen([binary, "--config", f"{work}/{config}.yaml"],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
request = b"GET /readyz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
while time.monotonic() - started < 30 and child.poll() is None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            connection.sendall(request)
            if connection.recv(64).startswith(b"HTTP/1.1 200"):
                print(child.pid, f"{(time.monotonic() - started) * 1000:.1f}")
                sys.exit()
    except OSError:
        pass
    time.sleep(0.001)
print(child.pid, "never")
EOF
  )
  [ "$ready_ms" != never ] || die "the sidecar did not get ready: $(tail -n 20 "$work/sidecar.log")"
}

# The sidecar is not this shell's child (the poller started it): wait for its PID to go.
stop_sidecar() {
  kill "$sidecar_pid" 2>/dev/null || true
  while kill -0 "$sidecar_pid" 2>/dev/null; do sleep 0.05; done
  sidecar_pid=
}
