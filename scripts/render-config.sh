#!/bin/sh
# Prints the sidecar's config.yaml as the chart renders it for the given values, ready for
# `referrers-sidecar check-config`: every secret file it names (`*_file` keys, which exist only
# in the pod) is pointed at a placeholder file under --placeholders. Needs helm and awk only.
#
#   scripts/render-config.sh [--placeholders DIR] [--chart DIR] [helm template flags…]
#   scripts/render-config.sh -n harbor -f my-values.yaml >config.yaml
#   cargo run -q -p referrers-sidecar -- check-config --config config.yaml
#
# --placeholders  where the placeholder files go (default: $TMPDIR/referrers-sidecar-placeholders);
#                 each holds the word "placeholder"
# --chart         the chart (default: helm/referrers-sidecar beside this script)
# --release-name  the release's name (default: referrers-sidecar)
# Every other argument goes to `helm template` (-n, -f, --set, …). Give the namespace of the
# install: core's and Redis's names are short when Harbor is in the same namespace.
set -eu

here="$(cd "$(dirname "$0")" && pwd)"
chart="$here/../helm/referrers-sidecar"
placeholders="${TMPDIR:-/tmp}/referrers-sidecar-placeholders"
release=referrers-sidecar
# Our options anywhere on the line; everything else goes to helm, in order.
n=$#
while [ "$n" -gt 0 ]; do
  arg="$1"; shift; n=$((n - 1))
  case "$arg" in
    --placeholders|--chart|--release-name)
      [ "$n" -gt 0 ] || { echo "render-config.sh: $arg needs a value" >&2; exit 2; }
      value="$1"; shift; n=$((n - 1)) ;;
    --placeholders=*|--chart=*|--release-name=*) value="${arg#*=}"; arg="${arg%%=*}" ;;
    *) set -- "$@" "$arg"; continue ;;
  esac
  case "$arg" in
    --placeholders) placeholders="$value" ;;
    --chart) chart="$value" ;;
    --release-name) release="$value" ;;
  esac
done
mkdir -p "$placeholders"
placeholders="$(cd "$placeholders" && pwd)"

rendered="$(helm template "$release" "$chart" \
  --show-only templates/referrers-sidecar/referrers-sidecar-cm.yaml "$@")"

# The ConfigMap's `config.yaml: |` block, unindented; then each `<key>_file: /path` pointed at a
# placeholder (paths of the pod: /etc/referrers-sidecar/…).
printf '%s\n' "$rendered" | awk -v root="$placeholders" '
  inblock && /^    / { print substr($0, 5); next }
  inblock && /^[ \t]*$/ { print ""; next }
  inblock { inblock = 0 }
  /^  config\.yaml: \|[-+]?$/ { inblock = 1; found = 1 }
  END { if (!found) { print "render-config.sh: no config.yaml in the rendered ConfigMap" > "/dev/stderr"; exit 1 } }
' | awk -v root="$placeholders" '
  match($0, /^[ ]*[a-z_]+_file: \/[^ ]+$/) {
    split($0, kv, ": ")
    path = kv[2]
    local = root path
    dir = local; sub(/\/[^\/]*$/, "", dir)
    system("mkdir -p \"" dir "\" && echo placeholder >\"" local "\"")
    print kv[1] ": " local
    next
  }
  { print }
'
