"""PostgreSQL's own per-table tuple counters, read only after they are flushed.

A backend flushes its pending statistics when it exits, so the writer's connections
are closed and their processes awaited before `pg_stat_user_tables` is read.
"""

import threading
from pathlib import Path

from sqlalchemy import Engine, text

from snapshotter.clock import monotonic
from snapshotter.db.tables import Base

TABLES = tuple(Base.metadata.tables)
Counters = dict[str, tuple[int, int, int]]


def _backends_of(database: str) -> list[Path]:
    # A backend's process title is "postgres: <user> <database> <client> <state>"; it
    # keeps it until the process exits, after flushing its statistics.
    prefix = f"postgres: {database} ".encode()
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes()
        except OSError:
            continue
        if title.startswith(b"postgres: ") and prefix in title:
            found.append(cmdline)
    return found


def _wait_for_exit(database: str, timeout: float = 30.0) -> None:
    deadline = monotonic() + timeout
    pause = threading.Event()
    while backends := _backends_of(database):
        if monotonic() > deadline:
            raise TimeoutError(f"backends of {database} did not exit: {backends}")
        pause.wait(0.01)


def write_counters(engine: Engine) -> Counters:
    """(inserted, updated, deleted) tuples per table, as PostgreSQL counted them.

    Every connection to the database must be closed first (the engine given here is
    disposed; other engines must have been disposed by their owners)."""
    database = engine.url.database or ""
    engine.dispose()
    _wait_for_exit(f"{engine.url.username} {database}")
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        rows = conn.execute(
            text("SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables")
        )
        counters = {r.relname: (r.n_tup_ins, r.n_tup_upd, r.n_tup_del) for r in rows}
    engine.dispose()
    return {t: counters.get(t, (0, 0, 0)) for t in TABLES}
