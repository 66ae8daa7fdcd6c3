"""The writer's shutdown on a real PostgreSQL server (SPEC §6, §7): SIGTERM commits
what is pending, but never beside a transaction the writer thread still has under
way, and what cannot be committed is counted, not silently lost.

The writer thread is held in a real database call: another session holds a lock on
the table the apply writes, longer than `close`'s own timeout. Each call then ends at
the server's statement timeout, with its transaction rolled back on the server (the
store's own deadline is set a little longer here, so that no abandoned transaction
is left waiting behind a call that returned).
"""

import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text

from snapshotter.clock import monotonic
from snapshotter.db import engine as db_engine
from snapshotter.db.store import Store
from tests.support import arc_objects as arc
from tests.support.db_rows import rows
from tests.support.engine_harness import Harness
from tests.support.memory_source import MemorySource
from tests.support.waiting import eventually

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SERVER_TIMEOUT = 2.0  # the server's statement and lock timeouts
STORE_TIMEOUT = 3.0  # the store's deadline on a database call
CLOSE_TIMEOUT = 1.0  # what shutdown asks for: less than one database call may take
APPLICATION = "github-runners-snapshotter"


@pytest.fixture
def short_engine(pg_engine: Engine) -> Iterator[Engine]:
    """The test's database, with the server's timeouts of SERVER_TIMEOUT."""
    url = pg_engine.url.render_as_string(hide_password=False)
    engine = db_engine.make_engine(url, timeout_seconds=SERVER_TIMEOUT)
    yield engine
    engine.dispose()


@dataclass
class Call:
    """One database call of the store: which thread made it, and when."""

    method: str
    thread: str
    started: float
    ended: float | None = None


def record_calls(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[Call]:
    """Wrap the store's database calls (the real ones run inside) to record them."""
    calls: list[Call] = []

    def recorded(method: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            record = Call(method, threading.current_thread().name, monotonic())
            calls.append(record)
            try:
                return real(*args, **kwargs)
            finally:
                record.ended = monotonic()

        return call

    for method in ("apply", "lookup", "reject", "probe", "load_state", "load_rejects"):
        monkeypatch.setattr(store, method, recorded(method, getattr(store, method)))
    return calls


def sessions(engine: Engine, *, but: int, where: str) -> int:
    """The store's sessions on the test's database (all but the one of pid `but`) that
    match `where`, as pg_stat_activity shows them now (a new transaction: no stale
    snapshot)."""
    with engine.connect() as conn:
        count: int = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                f"AND application_name = :name AND pid NOT IN (pg_backend_pid(), :but) AND {where}"
            ),
            {"name": APPLICATION, "but": but},
        ).scalar_one()
    return count


def test_shutdown_never_commits_beside_a_writer_still_in_a_database_call(
    pg_engine: Engine, short_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ars = arc.runner_set(uid="ars", rv="1")
    ers = arc.ephemeral_runner_set(ars, uid="ers", rv="2")
    runners = [
        arc.with_job(
            arc.ephemeral_runner(ers, name=f"runner-{n}", uid=f"runner-{n}", rv=str(3 + n))
        )
        for n in range(3)
    ]
    harness = Harness(short_engine, clock=lambda: NOW, store_timeout=STORE_TIMEOUT)
    harness.poll(MemorySource([ars, ers, *runners]))
    calls = record_calls(harness.store, monkeypatch)
    writer = harness.writer
    assert writer.applier.store.timeout == STORE_TIMEOUT

    with pg_engine.connect() as blocker:
        blocker.execute(text("LOCK TABLE github_ephemeral_runner_states IN EXCLUSIVE MODE"))
        pid = blocker.execute(text("SELECT pg_backend_pid()")).scalar_one()
        writer.start()
        finished = {"status": {"phase": "Succeeded", "ready": False}}
        harness.event("MODIFIED", arc.bumped(runners[0], "100", **finished))
        eventually(lambda: sessions(pg_engine, but=pid, where="wait_event_type = 'Lock'") == 1)
        [stuck] = [c for c in calls if c.thread == "writer" and c.ended is None]
        for n, runner in enumerate(runners[1:], start=1):  # queued while it waits
            harness.event("MODIFIED", arc.bumped(runner, str(100 + n), **finished))
        writer.close(timeout=CLOSE_TIMEOUT)
        left_behind = sessions(pg_engine, but=pid, where="state <> 'idle'")
        blocker.rollback()

    assert stuck.ended is not None  # the writer's transaction ended, then it stopped
    assert not writer.is_alive()
    assert left_behind == 0  # no transaction of the writer's still open on the server
    # one database call at a time: nothing of the final flush began before the
    # writer thread's transaction was over
    ordered = sorted(calls, key=lambda c: c.started)
    overlapping = [
        (a, b) for a, b in itertools.pairwise(ordered) if a.ended is None or a.ended > b.started
    ]
    assert overlapping == []
    final = [c for c in calls if c.thread == threading.current_thread().name]
    assert final, "the final flush was not attempted"
    assert all(c.started >= stuck.ended for c in final)
    # nothing committed, and every object not written is counted as dropped
    assert {r["uid"]: r["phase"] for r in rows(pg_engine, "github_ephemeral_runner_states")} == {
        f"runner-{n}": "Running" for n in range(3)
    }
    assert len(harness.queue) == 3
    assert harness.applier.stats.dropped_at_shutdown == 3
    harness.close()
