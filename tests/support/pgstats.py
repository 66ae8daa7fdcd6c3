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


def _backend_pids(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        return {r.pid for r in rows}


def _wait_gone(pids: set[int], timeout: float = 30.0) -> None:
    deadline = monotonic() + timeout
    pause = threading.Event()
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        if monotonic() > deadline:
            raise TimeoutError(f"backends {pids} did not exit")
        pause.wait(0.01)


def write_counters(engine: Engine) -> Counters:
    """(inserted, updated, deleted) tuples per table, as PostgreSQL counted them."""
    writers = _backend_pids(engine)  # the pooled connections the code under test used
    engine.dispose()
    _wait_gone(writers)  # a backend flushes its statistics before its process exits
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        rows = conn.execute(
            text("SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables")
        )
        counters = {r.relname: (r.n_tup_ins, r.n_tup_upd, r.n_tup_del) for r in rows}
    engine.dispose()
    return {t: counters.get(t, (0, 0, 0)) for t in TABLES}
