#!/usr/bin/env bash
# Builds the real Kubernetes control plane the tests run (tests/kube_cluster.py): kube-apiserver
# and kubectl from k8s.io/kubernetes, etcd from go.etcd.io/etcd/server/v3, at the versions pinned
# in tools/kube/kubernetes/go.mod and tools/kube/etcd/go.mod. `make kube-tools` calls it.
#
# The binaries go to a cache outside the clone, one folder per Kubernetes release:
#   ${TWINPLANE_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/twinplane/kube}/<version>/bin/
# A stamp beside bin/ records what they were built from (the go.mod and go.sum files, the Go
# version, the flags); when it matches, the script only says so and exits.
#
# Only the Go module proxy is used (through the module cache, GOMODCACHE). The builds run under
# `nice -n 19` with `-p 1` (TWINPLANE_KUBE_GO_P sets another number) so that they leave the
# machine to whatever else is running; a cold build takes minutes (docs/kubernetes.md).
#
# Usage: tools/kube/build.sh            build what is missing or stale
#        tools/kube/build.sh --bin-dir  print the folder the binaries are (or would be) in
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() {
  printf 'kube-tools: %s\n' "$*"
}

# The version a wrapper module requires of MODULE, read from its go.mod (no go command needed).
pinned() { # MODULE_DIR MODULE
  local version
  version=$(awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$here/$1/go.mod")
  if [[ -z $version ]]; then
    echo "error: $here/$1/go.mod does not require $2" >&2
    exit 1
  fi
  printf '%s\n' "$version"
}

kube_version=$(pinned kubernetes k8s.io/kubernetes)
etcd_version=$(pinned etcd go.etcd.io/etcd/server/v3)
cache=${TWINPLANE_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/twinplane/kube}
dest="$cache/$kube_version"
bin="$dest/bin"

if [[ ${1-} == --bin-dir ]]; then
  printf '%s\n' "$bin"
  exit 0
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--bin-dir]" >&2
  exit 2
fi

if ! command -v go >/dev/null; then
  echo "error: 'go' not found: building the Kubernetes test binaries needs Go 1.26+" >&2
  exit 1
fi

# Kubernetes' own release flags (hack/lib/version.sh): the version the binaries report, set in
# both packages that report one; -s -w as in its non-debug builds. No build date: reproducible.
kube_minor=${kube_version#v1.}
kube_minor=${kube_minor%%.*}
kube_ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1"
  kube_ldflags+=" -X $pkg.gitMinor=$kube_minor -X $pkg.gitTreeState=clean"
done
etcd_ldflags="-s -w"
jobs=${TWINPLANE_KUBE_GO_P:-1}

stamp="$dest/build.stamp"
want=$(
  printf 'kubernetes %s\netcd %s\n' "$kube_version" "$etcd_version"
  printf 'go %s\nCGO_ENABLED=0 -trimpath\n' "$(go env GOVERSION)"
  printf 'kube ldflags %s\netcd ldflags %s\n' "$kube_ldflags" "$etcd_ldflags"
  (cd "$here" && sha256sum kubernetes/go.mod kubernetes/go.sum etcd/go.mod etcd/go.sum)
)

up_to_date() {
  [[ -x $bin/kube-apiserver && -x $bin/kubectl && -x $bin/etcd && -f $stamp ]] \
    && [[ $(<"$stamp") == "$want" ]]
}

if up_to_date; then
  say "up to date in $bin (kubernetes $kube_version, etcd $etcd_version)"
  exit 0
fi

mkdir -p "$dest"
# One build at a time per release folder; a second caller waits, then finds the stamp.
exec 9>"$dest/.lock"
flock 9
if up_to_date; then
  say "up to date in $bin (built meanwhile by another run)"
  exit 0
fi

# Built into a fresh folder, moved into place last: an interrupted build leaves nothing that
# looks finished.
work=$(mktemp -d "$dest/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

build() { # MODULE_DIR OUTPUT LDFLAGS PACKAGE
  local start=$SECONDS
  say "go build -trimpath -p $jobs $4 -> $bin/$2"
  (cd "$here/$1" && CGO_ENABLED=0 GOTOOLCHAIN=local \
    nice -n 19 go build -trimpath -p "$jobs" -ldflags "$3" -o "$work/$2" "$4")
  say "built $2 in $((SECONDS - start))s"
}

say "building kubernetes $kube_version and etcd $etcd_version into $bin"
say "module cache: $(go env GOMODCACHE); build cache: $(go env GOCACHE)"
build etcd etcd "$etcd_ldflags" go.etcd.io/etcd/server/v3
build kubernetes kube-apiserver "$kube_ldflags" k8s.io/kubernetes/cmd/kube-apiserver
build kubernetes kubectl "$kube_ldflags" k8s.io/kubernetes/cmd/kubectl

chmod 755 "$work"
rm -rf "$bin"
mv "$work" "$bin"
trap - EXIT
printf '%s\n' "$want" >"$stamp"
"$bin/kube-apiserver" --version | sed 's/^/kube-tools: /'
"$bin/etcd" --version | sed -n 1p | sed 's/^/kube-tools: /'
say "done: $bin"
