"""Alembic environment: runs migrations on the engine handed over by `db.migrate`,
or, for developers using the `alembic` command, on `SNAPSHOTTER_DATABASE__URL`."""

import os

from alembic import context
from sqlalchemy import Engine

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


def run_migrations_online() -> None:
    engine = _engine()
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            compare_type=True,
            render_as_batch=engine.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported")
run_migrations_online()
