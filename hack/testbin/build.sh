#!/usr/bin/env bash
# Builds the real kube-apiserver and etcd that the end-to-end tests and the demo run,
# from the pinned Go modules in this folder (see go.mod), and prints their directory.
#
# Output: .testbin/<key>/ in the repository (git-ignored), where <key> hashes the
# inputs of the build. A copy is kept in ~/.cache/github-runners-snapshotter/testbin/<key>
# so that a fresh clone on the same machine reuses it; only a fresh machine builds
# (about 5-7 minutes on 2 cores, plus the module download).
# With --no-build it only prints the directory if the binaries exist, else fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

K8S_VERSION=v1.35.4
BUILD_FLAGS="CGO_ENABLED=0 -trimpath -s -w $K8S_VERSION"  # part of the cache key
key=$( (cat "$here/go.mod" "$here/go.sum" "$here"/cmd/*/main.go; echo "$BUILD_FLAGS") \
  | sha256sum | cut -c1-16)
out="$repo/.testbin/$key"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/github-runners-snapshotter/testbin/$key"

complete() { [ -x "$1/kube-apiserver" ] && [ -x "$1/etcd" ]; }

if complete "$out"; then
  echo "$out"
  exit 0
fi
if complete "$cache"; then
  mkdir -p "$out"
  cp "$cache/kube-apiserver" "$cache/etcd" "$out/"
  echo "$out"
  exit 0
fi
if [ "${1:-}" = "--no-build" ]; then
  echo "kube-apiserver and etcd are not built yet: run hack/testbin/build.sh" >&2
  exit 1
fi

command -v go >/dev/null || { echo "go is required to build the test binaries" >&2; exit 1; }
echo "==> building kube-apiserver $K8S_VERSION and etcd (first time on this machine only)" >&2
start=$(date +%s)
tmp="$out.tmp.$$"
mkdir -p "$tmp"
ldflags="-s -w \
  -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
  -X k8s.io/component-base/version.gitMajor=1 \
  -X k8s.io/component-base/version.gitMinor=35 \
  -X k8s.io/component-base/version.gitTreeState=clean"
(cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" ./cmd/kube-apiserver ./cmd/etcd)
rm -rf "$out"
mv "$tmp" "$out"
mkdir -p "$cache"
cp "$out/kube-apiserver" "$out/etcd" "$cache/"
echo "==> built in $(( $(date +%s) - start ))s" >&2
echo "$out"
