"""A throwaway PostgreSQL server for test runs to share, kept until interrupted.

Prints `TEST_SHARED_POSTGRES=127.0.0.1:PORT` once the server accepts
connections; test runs with that variable set use it instead of starting their own
(tests/conftest.py), which saves a mutation run of the PostgreSQL tests the 5 to 20 s
each mutant would spend starting one (docs/testing.md, "Mutation testing"). Stops
and removes the server on SIGINT or SIGTERM.

    .venv/bin/python hack/test_postgres.py > /tmp/test-postgres.env &
"""

import signal
import sys
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.postgres import SHARED_ENV, PostgresServer, find_bindir


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> int:
    bindir = find_bindir()
    if bindir is None:
        print("PostgreSQL binaries not found (set PG_BINDIR or run hack/setup.sh)", file=sys.stderr)
        return 1
    server = PostgresServer(bindir)
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.start()
        print(f"{SHARED_ENV}=127.0.0.1:{server.port}", flush=True)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
