#!/bin/sh
# Installs the Helm 4 post-renderer plugin `referrers-route` (plugin.yaml and post-render.sh) as
# a copy in Helm's plugin folder. `helm plugin install <folder>` would link to this folder
# instead: moving or deleting the checkout would then make every later Harbor upgrade fail.
# A repeat replaces the copy (and an earlier link) with this folder's files.
#
#   helm/referrers-sidecar/harbor-nginx/install-plugin.sh
#
# Honours HELM_PLUGINS, as helm does. POSIX sh.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
helm="${HELM_BIN:-helm}"
plugins="$("$helm" env HELM_PLUGINS)"
# HELM_PLUGINS may be a list; helm installs into its first folder.
plugins="${plugins%%:*}"
[ -n "$plugins" ] || { echo "install-plugin.sh: helm env HELM_PLUGINS is empty" >&2; exit 1; }
dest="$plugins/referrers-route"
mkdir -p "$plugins"
tmp="$(mktemp -d "$plugins/.referrers-route.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cp "$here/plugin.yaml" "$here/post-render.sh" "$tmp/"
chmod 0755 "$tmp" "$tmp/post-render.sh"
chmod 0644 "$tmp/plugin.yaml"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
"$helm" plugin list | grep -q '^referrers-route[[:space:]]' \
  || { echo "install-plugin.sh: helm does not list referrers-route after the copy" >&2; exit 1; }
echo "referrers-route installed in $dest (a copy: the checkout may move)"
