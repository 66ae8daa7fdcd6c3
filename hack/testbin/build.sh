#!/usr/bin/env bash
# Builds the real programs the end-to-end tests and the demo run, from the pinned Go
# modules in this folder, and prints their directory:
#   kube (default)  kube-apiserver and etcd (go.mod here; see cmd/)
#   helm            the helm CLI, for the chart's tests (helm/go.mod)
#   promtool        Prometheus's promtool, for the alert and dashboard tests
#                   (promtool/go.mod; service discovery left out: -tags remove_all_sd)
#   monitoring-crds the Prometheus Operator's ServiceMonitor and PrometheusRule CRDs,
#                   so that the API server validates what the chart renders; nothing
#                   is built: the files come from the operator's Go module (pinned
#                   version and go.sum hash, fetched like any module)
#
# Output: .testbin/<key>/ in the repository (git-ignored), where <key> hashes the
# inputs of the build. A copy is kept in ~/.cache/github-runners-snapshotter/testbin/<key>
# so that a fresh clone on the same machine reuses it; only a fresh machine builds
# (kube: about 5-7 minutes on 2 cores, helm: about 2, promtool: about 3, plus the
# module download).
# With --no-build it only prints the directory if the binaries exist, else fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

no_build=false
if [ "${1:-}" = "--no-build" ]; then
  no_build=true
  shift
fi
component=${1:-kube}

K8S_VERSION=v1.35.4
HELM_VERSION=v3.22.0
PROMETHEUS_VERSION=v0.316.0  # the Go module's version of Prometheus 3.16
OPERATOR_MODULE=github.com/prometheus-operator/prometheus-operator
OPERATOR_VERSION=v0.85.0
OPERATOR_SUM="h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s="
tags=""
fetch=false
case "$component" in
  kube)
    BUILD_FLAGS="CGO_ENABLED=0 -trimpath -s -w $K8S_VERSION"  # part of the cache key
    key=$( (cat "$here/go.mod" "$here/go.sum" "$here"/cmd/*/main.go; echo "$BUILD_FLAGS") \
      | sha256sum | cut -c1-16)
    module="$here"
    binaries="kube-apiserver etcd"
    targets="./cmd/kube-apiserver ./cmd/etcd"
    ldflags="-s -w \
      -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
      -X k8s.io/component-base/version.gitMajor=1 \
      -X k8s.io/component-base/version.gitMinor=35 \
      -X k8s.io/component-base/version.gitTreeState=clean"
    ;;
  helm)
    BUILD_FLAGS="CGO_ENABLED=0 -trimpath -s -w helm $HELM_VERSION"
    key=$( (cat "$here/helm/go.mod" "$here/helm/go.sum"; echo "$BUILD_FLAGS") \
      | sha256sum | cut -c1-16)
    module="$here/helm"
    binaries="helm"
    targets="helm.sh/helm/v3/cmd/helm"
    ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    ;;
  promtool)
    BUILD_FLAGS="CGO_ENABLED=0 -trimpath -s -w -tags remove_all_sd promtool $PROMETHEUS_VERSION"
    key=$( (cat "$here/promtool/go.mod" "$here/promtool/go.sum"; echo "$BUILD_FLAGS") \
      | sha256sum | cut -c1-16)
    module="$here/promtool"
    binaries="promtool"
    targets="github.com/prometheus/prometheus/cmd/promtool"
    ldflags="-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION"
    tags="remove_all_sd"
    ;;
  monitoring-crds)
    key=$(echo "$OPERATOR_MODULE $OPERATOR_VERSION $OPERATOR_SUM crds" | sha256sum | cut -c1-16)
    binaries="monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml"
    fetch=true
    ;;
  *)
    echo "unknown component $component (kube, helm, promtool or monitoring-crds)" >&2
    exit 2
    ;;
esac
out="$repo/.testbin/$key"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/github-runners-snapshotter/testbin/$key"

complete() {
  for binary in $binaries; do
    [ -s "$1/$binary" ] || return 1
  done
}

if complete "$out"; then
  echo "$out"
  exit 0
fi
if complete "$cache"; then
  mkdir -p "$out"
  for binary in $binaries; do cp "$cache/$binary" "$out/"; done
  echo "$out"
  exit 0
fi
if $no_build; then
  echo "$binaries not built yet: run hack/testbin/build.sh $component" >&2
  exit 1
fi

command -v go >/dev/null || { echo "go is required to build the test binaries" >&2; exit 1; }
echo "==> building $binaries (first time on this machine only)" >&2
start=$(date +%s)
tmp="$out.tmp.$$"
mkdir -p "$tmp"
if $fetch; then
  info=$(cd "$here" && go mod download -json "$OPERATOR_MODULE@$OPERATOR_VERSION")
  sum=$(printf '%s\n' "$info" | sed -n 's/^\t"Sum": "\(.*\)",$/\1/p')
  dir=$(printf '%s\n' "$info" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  if [ "$sum" != "$OPERATOR_SUM" ]; then
    echo "$OPERATOR_MODULE@$OPERATOR_VERSION: hash $sum, expected $OPERATOR_SUM" >&2
    exit 1
  fi
  for binary in $binaries; do cp "$dir/example/prometheus-operator-crd/$binary" "$tmp/"; done
  chmod u+w "$tmp"/*
else
  # shellcheck disable=SC2086 # several targets
  (cd "$module" && CGO_ENABLED=0 go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$tmp/" $targets)
fi
rm -rf "$out"
mv "$tmp" "$out"
mkdir -p "$cache"
for binary in $binaries; do cp "$out/$binary" "$cache/"; done
echo "==> built in $(( $(date +%s) - start ))s" >&2
echo "$out"
