# The two commands a newcomer needs (see README.md):
#   make demo   run the snapshotter against a local API server and show what it stored
#   make test   install what the tests need, then run every check and test
.PHONY: test demo setup bench

test:
	hack/test.sh $(ARGS)

demo:
	hack/demo.sh

setup:
	hack/setup.sh

bench:
	hack/setup.sh
	.venv/bin/python bench/capture.py --rate 20 --seconds 60
