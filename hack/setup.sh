#!/usr/bin/env bash
# Installs everything the tests need on a fresh machine, and reuses what is there:
#   - a virtualenv in .venv with the package and its test extras,
#   - the PostgreSQL server binaries (Debian package) for the throwaway test server,
#   - kube-apiserver and etcd, helm and promtool, built from pinned Go modules, and the
#     Prometheus Operator's CRDs from its module (hack/testbin/build.sh),
#   - podman (with runc) and mmdebstrap, for the container image's test
#     (hack/image.sh --install; the image itself is built by the test).
# Idempotent; safe to run before every test run. --no-postgres (the demo) skips
# PostgreSQL, helm, promtool and podman.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}

log() { printf '==> %s\n' "$*" >&2; }

setup_venv() {
  local stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
  if [ -f "$stamp" ]; then
    return
  fi
  log "installing the package and its test dependencies into .venv"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[test]'
  rm -f .venv/.installed-*
  touch "$stamp"
}

have_postgres() {
  [ -n "${PG_BINDIR:-}" ] && [ -x "$PG_BINDIR/initdb" ] && return 0
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && return 0
  command -v initdb >/dev/null
}

setup_postgres() {
  if have_postgres; then
    return
  fi
  log "installing the PostgreSQL server binaries (Debian package postgresql)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  # The package may start a cluster of its own on port 5432; the tests do not use it.
  $sudo pg_ctlcluster --help >/dev/null 2>&1 && $sudo pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
    $sudo pg_ctlcluster "$ver" "$name" stop || true
  done
}

setup_venv
hack/testbin/build.sh >/dev/null
if [ "${1:-}" != "--no-postgres" ]; then
  setup_postgres
  hack/testbin/build.sh helm >/dev/null
  hack/testbin/build.sh promtool >/dev/null
  hack/testbin/build.sh monitoring-crds >/dev/null
  hack/image.sh --install
fi
