#!/usr/bin/env bash
# Builds the Go programs of interop/go (KubeEdge's own code as twinplane's peer: mapper-framework's
# packages and the DMI stubs of github.com/kubeedge/api, at the versions pinned in
# interop/go/go.mod and go.sum). `make interop-tools` calls it; the tests and the bench run them.
#
# The binaries go to a cache outside the clone, one folder per build input:
#   ${TWINPLANE_INTEROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/twinplane/interop}/<hash>/bin/
# where <hash> covers interop/go's go.mod, go.sum and every .go file, and the Go version. When
# that folder is complete the script only says so and exits; a change of any input builds anew.
#
# Only the Go module proxy is used (through the module cache, GOMODCACHE).
#
# Usage: tools/interop/build.sh            build what is missing or stale
#        tools/interop/build.sh --bin-dir  print the folder the binaries are (or would be) in
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../../interop/go" && pwd)

say() {
  printf 'interop-tools: %s\n' "$*"
}

if ! command -v go >/dev/null; then
  echo "error: 'go' not found: the KubeEdge interop programs (interop/go) need Go 1.24+" >&2
  exit 1
fi

# The inputs, in a stable order, and the Go version: one hash names the build.
inputs=$(cd "$src" && { printf '%s\n' go.mod go.sum; find . -name '*.go' | LC_ALL=C sort; })
hash=$(
  cd "$src"
  { go env GOVERSION; while read -r f; do printf '%s\n' "$f"; cat "$f"; done <<<"$inputs"; } |
    sha256sum | cut -c1-16
)
cache=${TWINPLANE_INTEROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/twinplane/interop}
bin="$cache/$hash/bin"

if [[ ${1-} == --bin-dir ]]; then
  printf '%s\n' "$bin"
  exit 0
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--bin-dir]" >&2
  exit 2
fi

mapfile -t commands < <(cd "$src" && find cmd -mindepth 1 -maxdepth 1 -type d | LC_ALL=C sort)
missing=()
for cmd in "${commands[@]}"; do
  [[ -x "$bin/$(basename "$cmd")" ]] || missing+=("$cmd")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  say "up to date in $bin"
  exit 0
fi

mkdir -p "$bin.partial"
for cmd in "${missing[@]}"; do
  name=$(basename "$cmd")
  say "go build ./$cmd -> $bin/$name"
  (cd "$src" && go build -trimpath -o "$bin.partial/$name" "./$cmd")
done
mkdir -p "$bin"
mv "$bin.partial"/* "$bin/"
rmdir "$bin.partial"
say "built in $bin"
