#!/usr/bin/env bash
# Builds the Go programs of interop/ (KubeEdge's own code as twinplane's peer):
#   interop/go/cmd/*   mapper-framework's packages and the DMI stubs of github.com/kubeedge/api,
#                      at the versions pinned in interop/go/go.mod and go.sum;
#   interop/edgecore   edgecore-dmi: EdgeCore's device-twin module and DMI server
#                      (github.com/kubeedge/kubeedge), pinned in interop/edgecore/go.mod and go.sum.
# `make interop-tools` calls it; the tests and the bench run them.
#
# The binaries go to a cache outside the clone, one folder per build input:
#   ${TWINPLANE_INTEROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/twinplane/interop}/<hash>/bin/
# where <hash> covers both modules' go.mod, go.sum and every .go file, and the Go version. When
# that folder is complete the script only says so and exits; a change of any input builds anew
# (Go's own build cache keeps that quick: edgecore-dmi takes minutes only the first time).
#
# Only the Go module proxy is used (through the module cache, GOMODCACHE). edgecore-dmi needs
# cgo and a C compiler (EdgeCore's SQLite driver, github.com/mattn/go-sqlite3).
#
# Usage: tools/interop/build.sh            build what is missing or stale
#        tools/interop/build.sh --bin-dir  print the folder the binaries are (or would be) in
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
interop=$(cd "$here/../../interop" && pwd)
modules=(go edgecore)

say() {
  printf 'interop-tools: %s\n' "$*"
}

if ! command -v go >/dev/null; then
  echo "error: 'go' not found: the KubeEdge interop programs (interop/) need Go 1.24+" >&2
  exit 1
fi

# The inputs, in a stable order, and the Go version: one hash names the build.
inputs=$(
  cd "$interop"
  for m in "${modules[@]}"; do
    printf '%s\n' "$m/go.mod" "$m/go.sum"
    find "$m" -name '*.go' | LC_ALL=C sort
  done
)
hash=$(
  cd "$interop"
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

# Each program as "<binary name> <module folder> <package>".
programs=()
while read -r cmd; do
  programs+=("$(basename "$cmd") go ./$cmd")
done < <(cd "$interop/go" && find cmd -mindepth 1 -maxdepth 1 -type d | LC_ALL=C sort)
programs+=("edgecore-dmi edgecore .")
missing=()
for program in "${programs[@]}"; do
  read -r name _ _ <<<"$program"
  [[ -x "$bin/$name" ]] || missing+=("$program")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  say "up to date in $bin"
  exit 0
fi

mkdir -p "$bin.partial"
for program in "${missing[@]}"; do
  read -r name module package <<<"$program"
  say "go build $package (interop/$module) -> $bin/$name"
  start=$SECONDS
  # cgo on: without it go-sqlite3 builds a stub that fails only when EdgeCore opens its database.
  (cd "$interop/$module" && CGO_ENABLED=1 go build -trimpath -o "$bin.partial/$name" "$package")
  say "$name built in $((SECONDS - start)) s"
done
mkdir -p "$bin"
mv "$bin.partial"/* "$bin/"
rmdir "$bin.partial"
say "built in $bin"
