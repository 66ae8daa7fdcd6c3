"""Schema migrations with Alembic, driven from code.

The migration scripts ship inside the package (`snapshotter/db/migrations`), so
`snapshotter db upgrade` works from an installed wheel or the container image, with
no alembic.ini next to it.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, event, text

from snapshotter.db.errors import translated
from snapshotter.errors import StoreError

SCRIPT_LOCATION = "snapshotter.db:migrations"
# The key of the PostgreSQL advisory lock that one upgrade holds at a time ("snap").
MIGRATION_LOCK = 0x736E6170


def _config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["engine"] = engine
    return config


def head_revision() -> str | None:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with translated("reading the schema revision"), engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema; replicas starting together upgrade one at a time (the
    later ones then find nothing to do), instead of racing to create the same
    tables."""
    with translated("upgrading the schema"), _one_at_a_time(engine) as conn:
        config = _config(engine)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


@contextmanager
def _one_at_a_time(engine: Engine) -> Iterator[Connection]:
    """A connection holding the migration lock (PostgreSQL; SQLite's file lock
    already serializes writers). The lock belongs to the session, so the
    migrations' own transactions commit under it."""
    with engine.connect() as conn:
        if engine.dialect.name != "postgresql":
            yield conn
            return
        # A replica waits as long as another's migration takes: no statement or lock
        # timeout for this session (reset to the connection's own on the way out).
        conn.execute(text("SET statement_timeout = 0"))
        conn.execute(text("SET lock_timeout = 0"))
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        conn.commit()
        try:
            yield conn
        finally:
            conn.rollback()  # a failed migration leaves its transaction open
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            conn.execute(text("RESET statement_timeout"))
            conn.execute(text("RESET lock_timeout"))
            conn.commit()


def planned_upgrade(engine: Engine, revision: str = "head") -> list[str]:
    """The statements an upgrade would run on this database, found by running it in
    a transaction that is rolled back (PostgreSQL's DDL is transactional), so the
    adoption of existing tables is planned exactly as it would happen."""
    if engine.dialect.name != "postgresql":
        raise StoreError("a planned upgrade needs PostgreSQL (SQLite's DDL is not rolled back)")
    statements: list[str] = []

    def capture(_conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH", "SHOW")):
            return
        if parameters:  # psycopg2 renders the values as it would send them
            statement = cursor.mogrify(statement, parameters).decode()
        statements.append(statement.strip())

    with translated("planning the schema upgrade"), engine.connect() as conn:
        transaction = conn.begin()
        event.listen(conn, "before_cursor_execute", capture)
        try:
            config = _config(engine)
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
        finally:
            event.remove(conn, "before_cursor_execute", capture)
            transaction.rollback()
    return statements


def downgrade(engine: Engine, revision: str) -> None:
    with translated("downgrading the schema"):
        command.downgrade(_config(engine), revision)


def schema_is_current(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()
