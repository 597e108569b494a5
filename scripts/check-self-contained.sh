#!/usr/bin/env bash
# The repository is self-contained: no tracked file may read or cite a folder beside the clone
# (a user's `git clone` has nothing next to it). Exits 1 naming the files that do.
set -euo pipefail
cd "$(dirname "$0")/.."
# Spelled in two pieces so that this script does not name itself.
outside="../""shared"
if hits=$(git grep -n -F "$outside" -- . ':!Cargo.lock'); then
  printf 'check-self-contained: these tracked files reach outside the repository (%s):\n%s\n' \
    "$outside" "$hits" >&2
  exit 1
fi
echo "check-self-contained: ok"
