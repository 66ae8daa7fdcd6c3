"""Ordering of lists and watch events by resourceVersion (SPEC §4.4), on SQLite.

Hand-picked cases that document the rules; tests/integration/test_interleavings.py
checks them under random interleavings on PostgreSQL.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from snapshotter.kube import resources
from tests.support import arc_objects as arc
from tests.support.db_rows import rows
from tests.support.engine_harness import Harness
from tests.support.memory_source import MemorySource

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RUNNERS = resources.EPHEMERAL_RUNNERS


def setup(engine: Engine) -> tuple[Harness, MemorySource, dict[str, Any]]:
    ars = arc.runner_set(uid="ars", rv="1")
    ers = arc.ephemeral_runner_set(ars, uid="ers", rv="2")
    busy = arc.with_job(arc.ephemeral_runner(ers, uid="busy", rv="3"))
    source = MemorySource([ars, ers, busy])
    source.list_version = 100
    harness = Harness(engine, clock=lambda: NOW)
    harness.poll(source)
    return harness, source, {"ars": ars, "ers": ers, "busy": busy}


def state_of(engine: Engine, uid: str) -> dict[str, Any]:
    return next(r for r in rows(engine, "github_ephemeral_runner_states") if r["uid"] == uid)


def test_a_list_does_not_resurrect_a_runner_deleted_after_it_began(sqlite_engine: Engine) -> None:
    harness, source, objs = setup(sqlite_engine)
    token = harness.begin_list()  # the list is taken while the runner still exists (RV 101)
    harness.event("DELETED", arc.bumped(objs["busy"], "150"))  # ... then it is deleted
    harness.drain()
    harness.hand_list(source, token=token)
    harness.drain()
    row = state_of(sqlite_engine, "busy")
    assert (row["is_deleted"], row["completion_source"]) == (True, "deleted")
    assert "busy" not in harness.applier.state.runners


def test_a_list_does_not_vanish_a_runner_added_after_it_began(sqlite_engine: Engine) -> None:
    harness, source, objs = setup(sqlite_engine)
    stale = MemorySource(source.objects.values())
    stale.list_version = 110  # a list at RV 111
    newcomer = arc.with_job(arc.ephemeral_runner(objs["ers"], name="new", uid="new", rv="120"))
    harness.event("ADDED", newcomer)
    harness.drain()
    result = harness.poll(stale)
    assert result.summary.get("runners_vanished", 0) == 0
    assert state_of(sqlite_engine, "new")["is_deleted"] is False


def test_an_event_older_than_what_is_stored_is_ignored(sqlite_engine: Engine) -> None:
    harness, source, objs = setup(sqlite_engine)
    source.put(arc.bumped(objs["busy"], "50", status={"phase": "Running"}))
    harness.poll(source)
    harness.event("MODIFIED", arc.bumped(objs["busy"], "40", status={"phase": "Pending"}))
    harness.drain()  # arrives late: it must not overwrite the newer state
    assert state_of(sqlite_engine, "busy")["phase"] == "Running"


def test_a_poll_only_suspects_absence_while_the_watch_is_live(sqlite_engine: Engine) -> None:
    harness, source, objs = setup(sqlite_engine)
    harness.applier.watches.set("ephemeralrunners", True)
    harness.event("MODIFIED", arc.bumped(objs["busy"], "60"))  # the watch is at RV 60
    source.remove(objs["busy"])
    first = harness.poll(source)  # a list at RV 106: newer than where the watch is
    assert first.summary.get("runners_vanished", 0) == 0  # its DELETED event may still come
    harness.event("MODIFIED", arc.bumped(objs["ars"], "300"), resources.AUTOSCALING_RUNNER_SETS)
    harness.queue.note_progress("ephemeralrunners", "400")  # the watch passes the list
    harness.drain()
    assert state_of(sqlite_engine, "busy")["completion_source"] == "vanished"


def test_a_suspect_is_cleared_by_its_deleted_event(sqlite_engine: Engine) -> None:
    harness, source, objs = setup(sqlite_engine)
    harness.applier.watches.set("ephemeralrunners", True)
    source.remove(objs["busy"])
    harness.poll(source)
    harness.event("DELETED", arc.bumped(objs["busy"], "90"))  # the watch was behind
    harness.drain()
    row = state_of(sqlite_engine, "busy")
    assert (row["completion_source"], row["is_deleted"]) == ("deleted", True)


def test_a_second_poll_decides_a_suspect_if_the_watch_stays_behind(
    sqlite_engine: Engine,
) -> None:
    harness, source, objs = setup(sqlite_engine)
    harness.applier.watches.set("ephemeralrunners", True)
    source.remove(objs["busy"])
    assert harness.poll(source).summary.get("runners_vanished", 0) == 0
    assert harness.poll(source).summary["runners_vanished"] == 1


def test_a_relist_of_the_watch_records_what_vanished_at_once(sqlite_engine: Engine) -> None:
    harness, source, objs = setup(sqlite_engine)
    harness.applier.watches.set("ephemeralrunners", True)
    source.remove(objs["busy"])
    relist = harness.poll(source, kinds=[RUNNERS], from_watch=True)
    assert relist.summary["runners_vanished"] == 1
    # a list of one resource says nothing about the others: the pool is still active
    assert rows(sqlite_engine, "github_runner_sets")[0]["status"] == "active"


def test_a_namespace_list_says_nothing_about_other_namespaces(sqlite_engine: Engine) -> None:
    harness, source, objs = setup(sqlite_engine)
    other = arc.with_job(arc.ephemeral_runner(objs["ers"], name="x", uid="elsewhere", rv="20"))
    other["metadata"]["namespace"] = "other-ns"
    harness.event("ADDED", other)
    harness.drain()
    result = harness.poll(source, kinds=[RUNNERS], namespaces=["arc-runners"], from_watch=True)
    assert result.summary.get("runners_vanished", 0) == 0
    assert state_of(sqlite_engine, "elsewhere")["is_deleted"] is False


def test_events_of_one_runner_are_merged_keeping_the_job_and_the_deletion(
    sqlite_engine: Engine,
) -> None:
    harness, _, objs = setup(sqlite_engine)
    quick = arc.ephemeral_runner(objs["ers"], name="quick", uid="quick", rv="30")
    with_job = arc.with_job(arc.bumped(quick, "31"))
    harness.event("ADDED", quick)
    harness.event("MODIFIED", with_job)
    harness.event("DELETED", arc.bumped(with_job, "32"))
    assert len(harness.queue) == 1  # one object pending, however many events
    harness.drain()
    row = state_of(sqlite_engine, "quick")
    assert (row["is_deleted"], row["completion_source"], row["resource_version"]) == (
        True,
        "deleted",
        "32",
    )
    assert row["job_id"] == arc.JOB_STATUS["jobId"]


def test_a_new_leaders_reconciliation_is_asked_for_once_it_may_write(
    sqlite_engine: Engine,
) -> None:
    """A reconciliation asked for when the Lease is won would find the writer still a
    standby (its takeover runs on the writer's thread) and wait a whole interval."""
    harness, _, _ = setup(sqlite_engine)
    writer = harness.writer
    writer.follow(keep=timedelta(seconds=60))
    order: list[str] = []
    writer.lead(
        lambda: order.append("takeover"),
        then=lambda: order.append(f"reconcile leading={writer.leading}"),
    )
    assert order == []  # nothing runs on the elector's thread
    harness.drain()
    assert order == ["takeover", "reconcile leading=True"]
