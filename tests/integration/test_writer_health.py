"""What the writer reports about its own health, which the daemon acts on (SPEC §4.7):
how long the database has not answered, how long a leader has held work without
committing any, and a leader fenced by a newer one stepping down to a standby that
keeps its observations. On PostgreSQL; the writer's monotonic clock is stepped by
hand."""

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine

from snapshotter.sync import writer as writer_module
from tests.support import arc_objects as arc
from tests.support import poison
from tests.support.engine_harness import Harness
from tests.support.memory_source import MemorySource

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticks(monkeypatch: pytest.MonkeyPatch) -> Monotonic:
    clock = Monotonic()
    monkeypatch.setattr(writer_module, "monotonic", clock)
    return clock


def pool() -> list[dict[str, Any]]:
    ars = arc.runner_set(uid="ars", rv="1")
    return [ars, arc.ephemeral_runner_set(ars, uid="ers", rv="2")]


def pool_with_a_runner() -> list[dict[str, Any]]:
    ars, ers = pool()
    return [ars, ers, arc.ephemeral_runner(ers, uid="u0", rv="3")]


def test_unreachable_and_stalled_count_from_the_last_answer_and_commit(
    pg_engine: Engine, ticks: Monotonic
) -> None:
    poison.arm(pg_engine)
    harness = Harness(pg_engine, clock=lambda: T0)
    writer = harness.writer
    writer.idle_probe_seconds = 60  # no probe between the failure and the readings
    assert (writer.unreachable_for(), writer.stalled_for()) == (0.0, 0.0)

    ticks.now = 1010.0
    harness.hand_list(MemorySource(pool_with_a_runner()))
    assert writer.stalled_for() == 10.0  # work held since the last commit (at 1000)
    assert writer.unreachable_for() == 0.0  # the database answers

    poison.fail_next_commits(pg_engine, 1)  # a runner state's write fails once (40001)
    ticks.now = 1020.0
    assert writer.step() is False  # the commit failed: an outage
    assert not reachable(writer)
    ticks.now = 1027.0
    assert writer.unreachable_for() == 27.0  # nothing has answered since 1000
    assert writer.stalled_for() == 27.0

    writer.follow(keep=None)  # a standby holds work but stalls nothing
    assert writer.stalled_for() == 0.0
    writer.lead(lambda: None, then=lambda: None)
    ticks.now = 1028.0
    assert writer.step() is True  # the probe answers, it leads again, the work is written
    assert (writer.last_success, writer.last_commit) == (1028.0, 1028.0)

    # a database that answers probes but refuses every commit is as good as away
    ars, ers = pool()
    harness.hand_list(MemorySource([ars, ers, arc.ephemeral_runner(ers, uid="u1", rv="4")]))
    poison.fail_next_commits(pg_engine, 2)
    ticks.now = 1040.0
    assert writer.step() is False  # the commit fails
    ticks.now = 1042.0
    assert writer.step() is False  # the probe answers at 1042, the commit fails again
    ticks.now = 1045.0
    assert writer.unreachable_for() == 3.0  # it answered at 1042
    assert writer.stalled_for() == 17.0  # nothing committed since 1028

    ticks.now = 1050.0
    harness.drain()
    assert (writer.unreachable_for(), writer.stalled_for()) == (0.0, 0.0)
    assert (writer.last_success, writer.last_commit) == (1050.0, 1050.0)


def test_a_leader_fenced_by_a_newer_one_steps_down_and_keeps_its_work(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "TRIM_SECONDS", 0.0)
    now = [T0]
    old = Harness(pg_engine, clock=lambda: now[0])
    old.store.take_leadership("old", now=T0)
    old.poll(MemorySource(pool()))
    new = Harness(pg_engine, clock=lambda: T0)
    new.store.take_leadership("new", now=T0)

    runner = arc.ephemeral_runner(arc.ephemeral_runner_set(pool()[0], uid="ers"), uid="u1")
    assert old.event("ADDED", runner)
    assert old.writer.step() is False
    assert not old.writer.leading
    assert old.applier.stats.errors["fenced"] == 1
    assert [uid for _resource, uid in old.queue.pending_keys()] == ["u1"]  # given back
    assert old.writer.database_available  # fenced is not an outage

    # a standby now: it keeps what it observed in the last 30 s, as standbys do
    now[0] = T0 + timedelta(seconds=29.5)
    old.writer.step()
    assert len(old.queue) == 1
    now[0] = T0 + timedelta(seconds=30.5)
    old.writer.step()
    assert len(old.queue) == 0


def refuse_connections(engine: Engine, refuse: bool) -> None:
    """The database stops (or resumes) taking connections, and drops the open ones:
    to the writer, a database out of reach."""
    database = engine.url.database
    admin = create_engine(engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {not refuse}')
        if refuse:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{database}'"
            )
    admin.dispose()


def reachable(writer: writer_module.Writer) -> bool:
    """The writer's own view (a call, so that each reading is read anew)."""
    return writer.database_available


def gauge(harness: Harness, name: str) -> float | None:
    value: float | None = harness.applier.stats.registry.get_sample_value(name)
    return value


def test_an_unreachable_database_is_probed_at_its_interval_and_written_once_back(
    pg_engine: Engine, ticks: Monotonic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=writer_module.__name__)
    harness = Harness(pg_engine, clock=lambda: T0)
    writer = harness.writer
    writer.probe_seconds = 5
    writer.follow(keep=None)
    writer.lead(lambda: None, then=lambda: None)
    harness.hand_list(MemorySource(pool_with_a_runner()))

    refuse_connections(pg_engine, True)
    try:
        assert writer.step() is False  # the write finds no database
        assert not reachable(writer)
        assert gauge(harness, "snapshotter_database_available") == 0
        ticks.now += 1
        assert writer.step() is False  # no probe before its interval
        ticks.now += 5
        assert writer.step() is False  # the probe fails: still away, work still held
        assert not reachable(writer)
        assert harness.applier.stats.errors["database"] == 1  # and no write was tried
        assert len(harness.queue) == 3
        ticks.now += 1
    finally:
        refuse_connections(pg_engine, False)
    assert writer.step() is False  # the failed probe set the next one 5 s later
    ticks.now += 5
    assert writer.step() is True  # the probe answers, and the work is written
    assert reachable(writer)
    assert gauge(harness, "snapshotter_database_available") == 1
    assert gauge(harness, "snapshotter_leader") == 1
    assert len(harness.queue) == 0
    assert writer.idle  # nothing queued, no transaction under way: retention may run
    assert any("database reachable again, writing" in r.getMessage() for r in caplog.records)
