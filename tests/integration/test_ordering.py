"""Ordering of lists and watch events in the applier (SPEC §4.4), on SQLite.

resourceVersions are opaque, so the applier orders observations by its own
position counter: an observation that began before the one already applied for an
object is older news for that object.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from snapshotter.clock import monotonic
from snapshotter.db.store import Store
from snapshotter.kube import resources
from snapshotter.sync.applier import Applier, ReceivedEvent
from tests.support import arc_objects as arc
from tests.support.db_rows import rows
from tests.support.memory_source import MemorySource

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ERS = resources.EPHEMERAL_RUNNERS


def setup(engine: Engine) -> tuple[Applier, MemorySource, dict[str, Any]]:
    ars = arc.runner_set(uid="ars", rv="1")
    ers = arc.ephemeral_runner_set(ars, uid="ers", rv="2")
    busy = arc.with_job(arc.ephemeral_runner(ers, uid="busy", rv="3"))
    source = MemorySource([ars, ers, busy])
    applier = Applier(Store(engine, cluster_name=""), cluster_name="", clock=lambda: NOW)
    applier.load()
    applier.apply_listings(lists(source), since=applier.position)
    return applier, source, {"ars": ars, "ers": ers, "busy": busy}


def lists(source: MemorySource) -> list[Any]:
    return [source.list_all(r) for r in resources.ALL]


def event(kind: str, obj: dict[str, Any], position: int) -> ReceivedEvent:
    return ReceivedEvent(
        ERS, None, kind, obj, obj["metadata"]["resourceVersion"], position, monotonic()
    )


def state_of(engine: Engine, uid: str) -> dict[str, Any]:
    return next(r for r in rows(engine, "github_ephemeral_runner_states") if r["uid"] == uid)


def test_a_list_does_not_resurrect_a_runner_deleted_after_it_began(sqlite_engine: Engine) -> None:
    applier, source, objs = setup(sqlite_engine)
    since = applier.position
    stale = lists(source)  # taken while the runner still existed ...
    applier.apply_events([event("DELETED", arc.bumped(objs["busy"], "9"), since)])  # ... then gone
    applier.apply_listings(stale, since=since)
    row = state_of(sqlite_engine, "busy")
    assert (row["is_deleted"], row["completion_source"]) == (True, "deleted")
    assert "busy" not in applier.state.runners


def test_a_list_does_not_vanish_a_runner_added_after_it_began(sqlite_engine: Engine) -> None:
    applier, source, objs = setup(sqlite_engine)
    since = applier.position
    stale = lists(source)
    newcomer = arc.with_job(arc.ephemeral_runner(objs["ers"], name="new", uid="new", rv="10"))
    applier.apply_events([event("ADDED", newcomer, since)])
    result = applier.apply_listings(stale, since=since)
    assert result.changes.vanished == 0
    assert state_of(sqlite_engine, "new")["is_deleted"] is False


def test_an_event_received_before_a_newer_list_is_ignored(sqlite_engine: Engine) -> None:
    applier, source, objs = setup(sqlite_engine)
    received = applier.position
    old_event = event(
        "MODIFIED", arc.bumped(objs["busy"], "4", status={"phase": "Pending"}), received
    )
    applier.apply_events([])  # something else is applied meanwhile
    newer = arc.bumped(objs["busy"], "5", status={"phase": "Running"})
    source.put(newer)
    applier.apply_listings(lists(source), since=applier.position)
    applier.apply_events([old_event])  # arrives late: it must not overwrite the list
    assert state_of(sqlite_engine, "busy")["phase"] == "Running"


def test_a_poll_only_suspects_absence_while_the_watch_is_live(sqlite_engine: Engine) -> None:
    applier, source, objs = setup(sqlite_engine)
    applier.set_watch_live("ephemeralrunners", True)
    source.remove(objs["busy"])
    first = applier.apply_listings(lists(source), since=applier.position)
    assert first.changes.vanished == 0  # the live watch would deliver its DELETED event
    second = applier.apply_listings(lists(source), since=applier.position)
    assert second.changes.vanished == 1  # it did not: the runner vanished unseen
    assert state_of(sqlite_engine, "busy")["completion_source"] == "vanished"


def test_a_relist_of_the_watch_records_what_vanished_at_once(sqlite_engine: Engine) -> None:
    applier, source, objs = setup(sqlite_engine)
    applier.set_watch_live("ephemeralrunners", True)
    source.remove(objs["busy"])
    relist = applier.apply_listings([source.list_all(ERS)], since=applier.position, from_watch=True)
    assert relist.changes.vanished == 1
    # a partial list says nothing about the other resources: the pool is still active
    assert rows(sqlite_engine, "github_runner_sets")[0]["status"] == "active"


def test_a_namespace_list_says_nothing_about_other_namespaces(sqlite_engine: Engine) -> None:
    applier, source, objs = setup(sqlite_engine)
    other = arc.with_job(arc.ephemeral_runner(objs["ers"], name="x", uid="elsewhere", rv="20"))
    other["metadata"]["namespace"] = "other-ns"
    applier.apply_events([event("ADDED", other, applier.position)])
    result = applier.apply_listings(
        [source.list_all(ERS, "arc-runners")], since=applier.position, from_watch=True
    )
    assert result.changes.vanished == 0
    assert state_of(sqlite_engine, "elsewhere")["is_deleted"] is False


def test_events_of_one_runner_in_one_batch_keep_the_last_state(sqlite_engine: Engine) -> None:
    applier, _, objs = setup(sqlite_engine)
    quick = arc.ephemeral_runner(objs["ers"], name="quick", uid="quick", rv="30")
    with_job = arc.with_job(arc.bumped(quick, "31"))
    batch = [
        event("ADDED", quick, applier.position),
        event("MODIFIED", with_job, applier.position),
        event("DELETED", arc.bumped(with_job, "32"), applier.position),
    ]
    result = applier.apply_events(batch)
    assert [r.workload_uid for r in result.changes.runs] == []  # no config in this DB
    row = state_of(sqlite_engine, "quick")
    assert (row["is_deleted"], row["completion_source"], row["resource_version"]) == (
        True,
        "deleted",
        "32",
    )
