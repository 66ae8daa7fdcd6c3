"""`python -m snapshotter` is the same as the `snapshotter` console script."""

import sys

from snapshotter import cli

sys.exit(cli.main())
