#!/usr/bin/env bash
# `make demo`: installs what the demo needs (virtualenv, kube-apiserver and etcd)
# and runs hack/demo.py. Needs no database server: it writes an SQLite file.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/setup.sh --no-postgres
exec .venv/bin/python hack/demo.py
