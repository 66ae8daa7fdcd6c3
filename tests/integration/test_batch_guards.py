"""The guards of one batch, each in the scenario it exists for, on PostgreSQL.

The interleaving test reaches these scenarios only by chance; each case here is the
shortest one that goes wrong without its guard, and `hack/seeded_bugs.py` checks
that removing the guard fails it.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from snapshotter.db.store import DeclaredConfig, Store
from snapshotter.kube import resources
from tests.support import arc_objects as arc
from tests.support import poison
from tests.support.db_rows import rows
from tests.support.engine_harness import Harness
from tests.support.memory_source import MemorySource

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RUNNERS = resources.EPHEMERAL_RUNNERS
POOLS = resources.AUTOSCALING_RUNNER_SETS


class SteppedClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 10) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def state_of(engine: Engine, uid: str) -> dict[str, Any]:
    return next(r for r in rows(engine, "github_ephemeral_runner_states") if r["uid"] == uid)


def runs_of(engine: Engine) -> list[dict[str, Any]]:
    return rows(engine, "github_workflow_runs")


def busy_pool(runner_uid: str, rvs: tuple[str, str, str]) -> tuple[Any, Any, Any]:
    """A pool (AutoscalingRunnerSet, EphemeralRunnerSet) and a runner of it with a job,
    at these resourceVersions."""
    ars = arc.runner_set(uid="ars", rv=rvs[0])
    ers = arc.ephemeral_runner_set(ars, uid="ers", rv=rvs[1])
    return ars, ers, arc.with_job(arc.ephemeral_runner(ers, uid=runner_uid, rv=rvs[2]))


def opaque_pool_seen_by_the_watch(harness: Harness) -> tuple[Any, Any, Any]:
    """A busy pool with non-integer resourceVersions, stored from its ADDED events."""
    ars, ers, runner = busy_pool("opaque", ("va", "vb", "vc"))
    for resource, obj in ((POOLS, ars), (resources.EPHEMERAL_RUNNER_SETS, ers), (RUNNERS, runner)):
        harness.event("ADDED", obj, resource)
    harness.drain()
    return ars, ers, runner


def harness_collecting_every_pool(engine: Engine, clock: SteppedClock) -> Harness:
    """A harness whose database declares one collection config for every pool."""
    store = Store(engine, cluster_name="")
    config = DeclaredConfig(name="all", runner_set_namespace="", runner_set_name="")
    store.upsert_declared_configs([config], now=T0)
    store.close()
    return Harness(engine, clock=clock)


def pool_with_a_busy_runner(
    engine: Engine, clock: SteppedClock
) -> tuple[Harness, MemorySource, dict[str, Any]]:
    ars, ers, busy = busy_pool("busy", ("1", "2", "3"))
    source = MemorySource([ars, ers, busy])
    source.list_version = 100
    harness = harness_collecting_every_pool(engine, clock)
    harness.poll(source)
    return harness, source, {"ars": ars, "ers": ers, "busy": busy}


def test_a_runner_the_watch_brought_after_a_list_began_is_not_gone_by_that_list(
    pg_engine: Engine,
) -> None:
    """A list taken before a runner existed does not show it; applied after the
    watch's ADDED, it must not declare the runner gone (SPEC §4.4)."""
    clock = SteppedClock()
    harness, source, objs = pool_with_a_busy_runner(pg_engine, clock)
    token = harness.begin_list()
    stale = MemorySource(source.objects.values())  # the list: taken at RV 111 ...
    stale.list_version = 110
    newcomer = arc.with_job(arc.ephemeral_runner(objs["ers"], name="new", uid="new", rv="120"))
    harness.event("ADDED", newcomer)  # ... the runner is created at RV 120, seen first
    harness.drain()
    marker = harness.hand_list(stale, token=token)
    harness.drain()
    assert marker.result.summary.get("runners_vanished", 0) == 0  # nor counted as gone
    row = state_of(pg_engine, "new")
    assert (row["is_deleted"], row["is_completed"]) == (False, False)
    assert row["resource_version"] == "120"
    assert runs_of(pg_engine) == []
    assert "new" in harness.applier.state.runners


def test_a_runner_observed_after_a_list_began_does_not_shield_the_others_from_it(
    pg_engine: Engine,
) -> None:
    """The list at RV 110 shows neither runner: "new" (RV 120) came after it began, so
    its absence says nothing; "missed" (RV 105) was there before, and the list says it
    is gone (its deletion went unseen), whatever order the two are looked at in."""
    clock = SteppedClock()
    harness, source, objs = pool_with_a_busy_runner(pg_engine, clock)
    token = harness.begin_list()
    stale = MemorySource(source.objects.values())
    stale.list_version = 110
    newcomer = arc.ephemeral_runner(objs["ers"], name="new", uid="new", rv="120")
    missed = arc.ephemeral_runner(objs["ers"], name="missed", uid="missed", rv="105")
    harness.event("ADDED", newcomer)
    harness.event("ADDED", missed)
    harness.drain()
    harness.hand_list(stale, token=token)
    harness.drain()

    assert state_of(pg_engine, "new")["is_deleted"] is False
    assert state_of(pg_engine, "missed")["is_deleted"] is True


def test_a_suspect_decided_in_a_failed_transaction_is_decided_again_by_its_retry(
    pg_engine: Engine,
) -> None:
    """A poll list only suspects a runner it misses while the watch is behind; the
    next list decides it, as of the first list's time (SPEC §3.3 rule 3). When that
    transaction fails, its retry must decide the same way."""
    poison.arm(pg_engine)
    clock = SteppedClock()
    harness, source, objs = pool_with_a_busy_runner(pg_engine, clock)
    harness.applier.watches.set("ephemeralrunners", True)
    harness.event("MODIFIED", arc.bumped(objs["busy"], "60"))  # the watch is at RV 60
    harness.drain()
    source.remove(objs["busy"])
    first_missed = clock.tick()
    assert harness.poll(source).summary.get("runners_vanished", 0) == 0  # suspected
    clock.tick()
    poison.fail_next_commits(pg_engine, 1)  # the transaction deciding it fails once
    harness.poll(source)
    row = state_of(pg_engine, "busy")
    assert (row["is_deleted"], row["completion_source"]) == (True, "vanished")
    assert row["completed_at"] == first_missed
    assert [r["workload_uid"] for r in runs_of(pg_engine)] == ["busy"]


def test_a_runner_gone_in_the_batch_that_brings_its_pool_stays_gone(pg_engine: Engine) -> None:
    """A runner seen before its pool (watch streams are not ordered across resources)
    is attached when the pool arrives; if the same batch ends it, its stale live row
    must not be attached and written back over the end."""
    clock = SteppedClock()
    harness = harness_collecting_every_pool(pg_engine, clock)
    ars, _, runner = busy_pool("early", ("10", "11", "12"))
    harness.event("ADDED", runner)
    harness.drain()
    assert state_of(pg_engine, "early")["runner_set_id"] is None  # no pool known yet
    clock.tick()
    harness.event("DELETED", arc.bumped(runner, "20"))
    harness.event("ADDED", ars, POOLS)
    harness.drain()  # the deletion and the pool in one batch
    row = state_of(pg_engine, "early")
    assert (row["is_deleted"], row["completion_source"], row["resource_version"]) == (
        True,
        "deleted",
        "20",
    )
    assert "early" not in harness.applier.state.runners
    assert len(runs_of(pg_engine)) == 1
    pool = rows(pg_engine, "github_runner_sets")[0]
    assert (pool["current_runners"], pool["running_runners"]) == (0, 0)


def test_a_list_taken_before_a_deletion_does_not_rewrite_the_deleted_runners_state(
    pg_engine: Engine,
) -> None:
    """Where resourceVersions are not integers, arrival decides what is newer; a list
    taken before a runner's deletion, handed over after it, brings an older state.
    The deleted runner must remember when its last observation arrived."""
    clock = SteppedClock()
    harness = harness_collecting_every_pool(pg_engine, clock)
    ars, ers, runner = opaque_pool_seen_by_the_watch(harness)
    token = harness.begin_list()  # a list taken now shows the runner as it is ...
    listed = MemorySource([ars, ers, runner])
    failed = arc.bumped(runner, "vd", status={"phase": "Failed"})
    harness.event("MODIFIED", failed)  # ... then it fails and is deleted
    harness.event("DELETED", arc.bumped(failed, "ve"))
    harness.drain()
    harness.hand_list(listed, token=token)  # the list reaches the writer last
    harness.drain()
    row = state_of(pg_engine, "opaque")
    assert (row["phase"], row["resource_version"], row["is_deleted"]) == ("Failed", "ve", True)


def test_lists_taken_before_a_change_never_bring_the_older_state_back(pg_engine: Engine) -> None:
    """Where resourceVersions are not integers, two lists taken before a runner
    changed, handed over after the change was stored, are both older: ignoring the
    first must not make the second look newer."""
    clock = SteppedClock()
    harness = harness_collecting_every_pool(pg_engine, clock)
    ars, ers, runner = opaque_pool_seen_by_the_watch(harness)
    tokens = [harness.begin_list(), harness.begin_list()]  # two lists see it as it is
    harness.event("MODIFIED", arc.bumped(runner, "vd", status={"phase": "Failed"}))
    harness.drain()
    for token in tokens:  # ... and reach the writer after the change, one by one
        harness.hand_list(MemorySource([ars, ers, runner]), token=token)
        harness.drain()
    row = state_of(pg_engine, "opaque")
    assert (row["phase"], row["resource_version"]) == ("Failed", "vd")
