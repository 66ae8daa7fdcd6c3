# The two commands a newcomer needs (see README.md):
#   make demo   run the snapshotter against a local API server and show what it stored
#   make test   install what the tests need, then run every check and test
.PHONY: test test-upgrade demo setup image lock bench bench-faults bench-restarts bench-scale bench-retention seeded-bugs test-deep mutation

test:
	hack/test.sh $(ARGS)

# The rolling upgrade from the previous schema head (README.md, "Upgrading"); installs
# that version from git history into a cached venv (needs the full clone and PyPI).
test-upgrade:
	hack/setup.sh
	.venv/bin/pytest -m upgrade tests/e2e/test_rolling_upgrade.py $(ARGS)

demo:
	hack/demo.sh

setup:
	hack/setup.sh

# The container image github-runners-snapshotter:local, built with podman (README.md,
# "Container image"); installs podman and mmdebstrap if missing.
image:
	hack/image.sh

# Regenerates requirements.lock and requirements-build.lock from pyproject.toml.
lock:
	hack/lock.sh

bench:
	hack/setup.sh
	.venv/bin/python bench/capture.py --rate 20 --seconds 60

bench-faults:
	hack/setup.sh
	.venv/bin/python bench/faults.py --outages 10,30,60,120 --kills 10

# API server restarts under load (docs/benchmarks.md): this tree's daemon against the
# one before the fast watch retry, installed from git history into a cached venv.
bench-restarts:
	hack/setup.sh
	.venv/bin/python bench/faults.py --outages "" --kills 0 --apiserver-restarts 3 --before c9e7551^

bench-scale:
	hack/setup.sh
	.venv/bin/python bench/scale.py --sizes 1000,10000,50000

seeded-bugs:
	hack/setup.sh
	.venv/bin/python hack/seeded_bugs.py

test-deep:
	hack/setup.sh
	INTERLEAVING_SEED=random INTERLEAVING_EXAMPLES=3000 .venv/bin/pytest -q -s tests/integration/test_interleavings.py

# Retention's deletion rate and its cost to the writer on a 10-million-row history,
# and the rows and bytes each table gains per day (docs/benchmarks.md).
bench-retention:
	hack/setup.sh
	.venv/bin/python bench/retention.py --rows 10000000

# Mutation testing with mutmut ([tool.mutmut] in pyproject.toml, docs/testing.md,
# "Mutation testing"): hours for every module, so not part of `make test`. MUTANTS
# narrows the run to mutant names (globs), e.g. MUTANTS='snapshotter.diff.*'; results
# are kept in mutants/, and a second run checks only what changed.
MUTATION_CHILDREN ?= 1
mutation:
	hack/setup.sh
	nice -n 10 .venv/bin/mutmut run --max-children $(MUTATION_CHILDREN) $(MUTANTS)
	.venv/bin/python hack/mutation_report.py
