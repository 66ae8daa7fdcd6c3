"""Session fixtures: the PostgreSQL server the suite starts itself, and databases.

Without PostgreSQL binaries the `db` tests skip locally with the reason; under
CI=true a missing server is an error, so CI can never pass by skipping them.

With TEST_SHARED_POSTGRES=host:port the suite uses that running server instead
of starting one (hack/test_postgres.py; `make mutation` on the PostgreSQL half runs
one test run per mutant). `pg_engine` and `empty_pg_engine` then drop their
database after the test, and the migrated template is kept on the server, one per
version of the migrations.
"""

import hashlib
import itertools
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import freezegun
import pytest
from sqlalchemy import Engine

from snapshotter.db import engine as db_engine
from snapshotter.db import migrate
from tests.support.postgres import PostgresServer, SharedPostgresServer, find_bindir, shared_server

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# freezegun walks every loaded module; the kubernetes client builds pydantic models
# lazily on attribute access, which fails while datetime is patched.
freezegun.configure(extend_ignore_list=["kubernetes"])
_names = itertools.count()
# Database names of this test run: unique among the runs that share a server.
_RUN = secrets.token_hex(4)
_TEMPLATE_LOCK = 0x536E6170  # advisory lock: one run migrates a shared template


def _database(prefix: str) -> str:
    return f"{prefix}_{_RUN}_{next(_names)}"


def _migrations_digest() -> str:
    """Identifies the migrations: a shared template is reused only by the same ones."""
    digest = hashlib.sha256()
    root = Path(migrate.__file__).parent / "migrations"
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.db)
        if "e2e" in item.path.parts:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.db)
    # Tests without servers first: a failure shows before PostgreSQL has started, and a
    # mutation run (`make mutation`, which stops at the first failure) often never
    # starts it.
    items.sort(key=lambda item: item.get_closest_marker("db") is not None)


@pytest.fixture(autouse=True)
def restored_logging() -> Iterator[None]:
    """`cli.main` configures the root logger for the stream of the test that ran it;
    put it back, so that later tests do not log into a closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def pytest_sessionfinish(session: pytest.Session) -> None:
    # In CI a skipped test hides missing infrastructure: fail the run instead.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if IN_CI and skipped and reporter:
        reporter.write_line(f"CI=true: {len(skipped)} skipped test(s) count as failures", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def skip_or_fail(reason: str) -> NoReturn:
    """Skip on a developer machine; fail under CI=true."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: not skipping)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    shared = shared_server()
    if shared is not None:
        shared.start()
        yield shared
        return
    bindir = find_bindir()
    if bindir is None:
        skip_or_fail("PostgreSQL binaries not found (set PG_BINDIR or run hack/setup.sh)")
    server = PostgresServer(bindir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def migrated_template(postgres: PostgresServer) -> str:
    """A database at the Alembic head, copied for each test (CREATE DATABASE ... TEMPLATE)."""
    if isinstance(postgres, SharedPostgresServer):
        return _shared_template(postgres)
    name = "snapshotter_template"
    engine = db_engine.make_engine(postgres.create_database(name))
    migrate.upgrade(engine)
    engine.dispose()
    return name


def _shared_template(server: SharedPostgresServer) -> str:
    name = f"snapshotter_template_{_migrations_digest()}"
    with server.exclusive(_TEMPLATE_LOCK):
        if not server.has_database(name):
            engine = db_engine.make_engine(server.create_database(name))
            try:
                migrate.upgrade(engine)
            except BaseException:
                engine.dispose()
                server.drop_database(name)
                raise
            engine.dispose()
    return name


def _dropped_after(postgres: PostgresServer, name: str, engine: Engine) -> Iterator[Engine]:
    yield engine
    engine.dispose()
    if isinstance(postgres, SharedPostgresServer):
        postgres.drop_database(name)


@pytest.fixture
def pg_engine(postgres: PostgresServer, migrated_template: str) -> Iterator[Engine]:
    name = _database("t")
    url = postgres.create_database(name, template=migrated_template)
    yield from _dropped_after(postgres, name, db_engine.make_engine(url))


@pytest.fixture
def empty_pg_engine(postgres: PostgresServer) -> Iterator[Engine]:
    name = _database("e")
    yield from _dropped_after(postgres, name, db_engine.make_engine(postgres.create_database(name)))


@pytest.fixture
def sqlite_engine(tmp_path: os.PathLike[str]) -> Iterator[Engine]:
    engine = db_engine.make_engine(f"sqlite:///{tmp_path}/snapshotter.db")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()
