"""Read whole tables as lists of dicts, in insertion order (typed on SQLite too)."""

from typing import Any

from sqlalchemy import Engine, select

from snapshotter.db.tables import Base


def rows(engine: Engine, table: str) -> list[dict[str, Any]]:
    model = Base.metadata.tables[table]
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(model).order_by(model.c.id)).mappings()]


def snapshot(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    return {table: rows(engine, table) for table in Base.metadata.tables}
