"""A leader that stepped down because it could not write keeps every observation it
holds (nobody may be able to write them), but not forever: once the database shows
that another replica took over, it trims like any standby again, except what it
last observed before the successor's own window began (only it holds that), so
its memory stops growing (SPEC §4.7, §7).
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from snapshotter.db.store import Store
from snapshotter.sync import writer as writer_module
from tests.support import arc_objects as arc
from tests.support.engine_harness import Harness
from tests.support.memory_source import MemorySource

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
STANDBY_WINDOW = timedelta(minutes=1)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def held(harness: Harness) -> set[str]:
    """The runners whose observations the writer holds, after a few of its steps."""
    for _ in range(3):
        harness.writer.step()
    return {uid for _resource, uid in harness.queue.pending_keys()}


def test_a_replica_that_stepped_down_for_the_database_trims_again_once_another_leads(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "SUCCESSOR_SECONDS", 0.0)
    monkeypatch.setattr(writer_module, "TRIM_SECONDS", 0.0)
    clock = Clock()
    ars = arc.runner_set(uid="ars", rv="1")
    ers = arc.ephemeral_runner_set(ars, uid="ers", rv="2")
    harness = Harness(pg_engine, clock=clock)
    harness.poll(MemorySource([ars, ers]))
    harness.store.take_leadership("cut-off", now=T0)

    def observe(name: str, rv: int, minutes: float) -> dict[str, Any]:
        clock.now = T0 + timedelta(minutes=minutes)
        runner = arc.with_job(arc.ephemeral_runner(ers, name=name, uid=name, rv=str(rv)))
        assert harness.event("ADDED", runner)
        return runner

    # it stepped down while the database was out of its reach: everything is kept
    harness.writer.follow(keep=None, once_superseded=STANDBY_WINDOW)
    observe("before-the-successor", 10, minutes=5)
    observe("held-by-the-successor", 11, minutes=7.5)
    observe("recent", 12, minutes=9.5)
    clock.now = T0 + timedelta(minutes=10)
    assert held(harness) == {"before-the-successor", "held-by-the-successor", "recent"}

    # another replica took over at minute 8, holding the last minute of observations
    Store(pg_engine, cluster_name="").take_leadership("reaching", now=T0 + timedelta(minutes=8))
    assert held(harness) == {"before-the-successor", "recent"}

    # from then on it keeps a standby's window, and what only it holds
    observe("later", 13, minutes=20)
    assert held(harness) == {"before-the-successor", "later"}
    harness.close()
