#!/usr/bin/env bash
# Regenerates the dependency locks the container image installs from:
#   requirements.lock        the runtime dependencies of pyproject.toml ([project]
#                            dependencies; not the test extras), with every transitive one
#   requirements-build.lock  what builds the package's wheel ([build-system] requires)
# Both pin exact versions with sha256 hashes (pip install --require-hashes), resolved
# for the image's platform, CPython 3.11 on Linux x86_64, whatever machine runs this.
# Run it after changing a dependency range in pyproject.toml, or to take newer releases
# (`make lock`); tests/unit/test_lock.py fails while the lock disagrees with pyproject.
# uv does the resolution; a pinned version is installed into a cache directory once.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
tools="${XDG_CACHE_HOME:-$HOME/.cache}/github-runners-snapshotter/uv-$UV_VERSION"
if [ ! -x "$tools/bin/uv" ]; then
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet "uv==$UV_VERSION"
fi

compile() {
  # --python-platform/--python-version: the image's interpreter, not this machine's.
  # --only-binary: the image has no compiler; every pinned version must ship a wheel.
  # --no-header is avoided so the file says how it was made; the cache path is dropped.
  "$tools/bin/uv" pip compile --quiet --generate-hashes --only-binary :all: \
    --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
    --custom-compile-command "hack/lock.sh" "$@"
}

compile pyproject.toml --output-file requirements.lock
# The build requirements are read from pyproject.toml's [build-system] table.
python3 - >requirements-build.in <<'PY'
import tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["build-system"]["requires"]))
PY
compile requirements-build.in --output-file requirements-build.lock
rm requirements-build.in
