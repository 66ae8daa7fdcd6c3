"""Read whole tables as lists of dicts, in insertion order (typed on SQLite too)."""

from typing import Any

from sqlalchemy import Engine, select, text

from snapshotter.db.tables import Base


def rows(engine: Engine, table: str) -> list[dict[str, Any]]:
    model = Base.metadata.tables[table]
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(model).order_by(model.c.id)).mappings()]


def snapshot(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    return {table: rows(engine, table) for table in Base.metadata.tables}


def refuse_inserts(
    engine: Engine, table: str, message: str, *, errcode: str = "lock_not_available"
) -> None:
    """Make every INSERT into `table` fail inside the transaction: a real database
    failure in the middle of an apply, from a PL/pgSQL trigger (PostgreSQL only).
    The default error code is not a data error (the writer retries it later);
    `data_exception` makes the database refuse the data itself."""
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE FUNCTION refuse_{table}() RETURNS trigger AS $$ BEGIN "
                f"RAISE EXCEPTION '{message}' USING ERRCODE = '{errcode}'; END $$ "
                "LANGUAGE plpgsql"
            )
        )
        conn.execute(
            text(
                f"CREATE TRIGGER refuse BEFORE INSERT ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION refuse_{table}()"
            )
        )


def allow_inserts(engine: Engine, table: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"DROP TRIGGER refuse ON {table}"))
        conn.execute(text(f"DROP FUNCTION refuse_{table}()"))
