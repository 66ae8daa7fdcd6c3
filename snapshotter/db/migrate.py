"""Schema migrations with Alembic, driven from code.

The migration scripts ship inside the package (`snapshotter/db/migrations`), so
`snapshotter db upgrade` works from an installed wheel or the container image, with
no alembic.ini next to it.
"""

from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event

from snapshotter.db.errors import translated
from snapshotter.errors import StoreError

SCRIPT_LOCATION = "snapshotter.db:migrations"


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
    with translated("upgrading the schema"):
        command.upgrade(_config(engine), revision)


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
