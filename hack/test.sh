#!/usr/bin/env bash
# The one command that runs every check and every test on a fresh machine:
# installs what is missing (hack/setup.sh), then lint, types, layering and pytest.
# Extra arguments go to pytest, e.g. `make test ARGS="-k parse"`.
set -euo pipefail
cd "$(dirname "$0")/.."

hack/setup.sh

echo "==> ruff" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> mypy (strict)" >&2
.venv/bin/mypy
echo "==> import-linter" >&2
.venv/bin/lint-imports --no-cache
echo "==> pytest" >&2
.venv/bin/pytest "$@"
