"""Alembic environment: runs migrations on the engine handed over by `db.migrate`,
or, for developers using the `alembic` command, on `SNAPSHOTTER_DATABASE__URL`."""

import os

from alembic import context
from sqlalchemy import Connection, Engine

from snapshotter.db import engine as engine_factory
from snapshotter.db import tables

config = context.config
target_metadata = tables.Base.metadata


def _engine() -> Engine:
    given = config.attributes.get("engine")
    if isinstance(given, Engine):
        return given
    url = os.environ.get("SNAPSHOTTER_DATABASE__URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set SNAPSHOTTER_DATABASE__URL to the database to migrate")
    return engine_factory.make_engine(url)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    # On a connection that is already in a transaction (a dry run), this one is
    # used and neither committed nor rolled back here.
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if isinstance(given, Connection):
        _run(given)
        return
    with _engine().connect() as connection:
        _run(connection)


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported: use `snapshotter db upgrade --sql`")
run_migrations_online()
