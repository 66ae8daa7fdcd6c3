"""Schema migrations with Alembic, driven from code.

The migration scripts ship inside the package (`snapshotter/db/migrations`), so
`snapshotter db upgrade` works from an installed wheel or the container image, with
no alembic.ini next to it.
"""

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from snapshotter.db.errors import translated

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


def downgrade(engine: Engine, revision: str) -> None:
    with translated("downgrading the schema"):
        command.downgrade(_config(engine), revision)


def schema_is_current(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()
