"""Rows the database refuses for their data (SPEC §6), on PostgreSQL with the
refusals of tests/support/poison.py: each refusal is recorded in snapshotter_rejects
and the rest is written, and the writer goes on. An object whose end is refused
leaves the state (so that every list does not try again) and keeps its row; a
pool's refused counts are not tried again until they change or a retry; a refused
history row stays owed until it is written.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from snapshotter.diff.changes import COUNTS_REFUSED, HISTORY_REFUSED
from tests.support import arc_objects as arc
from tests.support import poison
from tests.support.db_rows import rows
from tests.support.engine_harness import Harness
from tests.support.memory_source import MemorySource

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SETS = "github_runner_sets"
HISTORY = "github_runner_set_history"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class TwoPools:
    """Pools "alpha" and "bravo" in a MemorySource, each with `n` idle runners."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.rv = 10
        self.pools = {
            name: self._put(arc.runner_set(name=name, uid=f"ars-{name}", rv=self._next()))
            for name in ("alpha", "bravo")
        }
        self.sets = {
            name: self._put(arc.ephemeral_runner_set(ars, uid=f"ers-{name}", rv=self._next()))
            for name, ars in self.pools.items()
        }
        self.runners: dict[str, int] = {"alpha": 0, "bravo": 0}

    def _next(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _put(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.objects[obj["metadata"]["uid"]] = obj
        return obj

    def add_runner(self, pool: str) -> None:
        self.runners[pool] += 1
        n = self.runners[pool]
        uid = f"{pool}-{n}"
        name = f"{pool}-abcde-runner-r{n}"
        self._put(arc.ephemeral_runner(self.sets[pool], name=name, uid=uid, rv=self._next()))

    def source(self) -> MemorySource:
        source = MemorySource(list(self.objects.values()))
        source.list_version = self.rv
        return source


def current_runners(engine: Engine) -> dict[str, int]:
    return {r["name"]: r["current_runners"] for r in rows(engine, SETS)}


def refusals_logged(caplog: pytest.LogCaptureFixture) -> int:
    return sum("pool counts refused" in r.getMessage() for r in caplog.records)


def rejects_of(engine: Engine, resource: str) -> list[dict[str, Any]]:
    return [r for r in rows(engine, "snapshotter_rejects") if r["resource"] == resource]


@pytest.fixture
def armed(pg_engine: Engine) -> Engine:
    poison.arm(pg_engine)
    return pg_engine


@pytest.mark.parametrize("errcode", poison.ERRCODES)
def test_a_pools_refused_counts_are_recorded_and_the_other_pools_counts_written(
    armed: Engine, errcode: str, caplog: pytest.LogCaptureFixture
) -> None:
    cluster, clock = TwoPools(), Clock()
    for pool in ("alpha", "bravo"):
        cluster.add_runner(pool)
    harness = Harness(armed, clock=clock)
    harness.poll(cluster.source())
    assert current_runners(armed) == {"alpha": 1, "bravo": 1}

    poison.refuse_named(armed, SETS, "bravo", errcode)
    for pool in ("alpha", "bravo"):
        cluster.add_runner(pool)
    clock.now += timedelta(seconds=10)
    harness.poll(cluster.source())

    assert current_runners(armed) == {"alpha": 2, "bravo": 1}
    assert refusals_logged(caplog) == 1
    refused = rejects_of(armed, COUNTS_REFUSED)
    assert [(r["uid"], r["name"], r["payload"]) for r in refused] == [("ars-bravo", "bravo", None)]
    assert "refused by a rule of this database" in refused[0]["error"]
    assert harness.writer.failed is None  # the writer goes on

    # unchanged counts are not tried again
    clock.now += timedelta(seconds=10)
    harness.poll(cluster.source())
    assert refusals_logged(caplog) == 1
    assert len(rejects_of(armed, COUNTS_REFUSED)) == 1

    # once the rule is gone, counts that moved are written
    poison.cure(armed)
    cluster.add_runner("bravo")
    clock.now += timedelta(seconds=10)
    harness.poll(cluster.source())
    assert current_runners(armed) == {"alpha": 2, "bravo": 3}


def test_every_pool_whose_counts_are_refused_is_counted(armed: Engine) -> None:
    cluster, clock = TwoPools(), Clock()
    harness = Harness(armed, clock=clock)
    harness.poll(cluster.source())
    poison.refuse_named(armed, SETS, "a", "P0001")  # both names have an "a"
    cluster.add_runner("alpha")
    cluster.add_runner("bravo")
    harness.poll(cluster.source())

    assert harness.writer.totals.rejected == 2
    assert {r["uid"] for r in rejects_of(armed, COUNTS_REFUSED)} == {"ars-alpha", "ars-bravo"}
    labels = {"resource": COUNTS_REFUSED}
    metric = harness.applier.stats.registry.get_sample_value(
        "snapshotter_objects_rejected_total", labels
    )
    assert metric == 2


def test_a_retry_writes_the_refused_counts_that_did_not_move(armed: Engine) -> None:
    cluster, clock = TwoPools(), Clock()
    cluster.add_runner("bravo")
    harness = Harness(armed, clock=clock)
    harness.poll(cluster.source())
    poison.refuse_named(armed, SETS, "bravo", "P0001")
    cluster.add_runner("bravo")
    harness.poll(cluster.source())
    assert current_runners(armed)["bravo"] == 1

    poison.cure(armed)
    harness.applier.retry_rejected()
    harness.applier.flush()
    assert current_runners(armed)["bravo"] == 2
    assert rejects_of(armed, COUNTS_REFUSED) == []  # resolved by the write


def history_of(engine: Engine) -> list[tuple[str, int]]:
    ids = {r["id"]: r["name"] for r in rows(engine, SETS)}
    return sorted((ids[h["runner_set_id"]], h["current_runners"]) for h in rows(engine, HISTORY))


def test_a_refused_history_row_is_recorded_skipped_and_still_owed(armed: Engine) -> None:
    cluster, clock = TwoPools(), Clock()
    harness = Harness(armed, clock=clock, history_period=timedelta(minutes=1))
    harness.poll(cluster.source())
    before = history_of(armed)

    poison.refuse_history(armed, at_least=2, errcode="23514")
    cluster.add_runner("alpha")
    cluster.add_runner("bravo")
    cluster.add_runner("bravo")
    clock.now += timedelta(minutes=2)
    harness.poll(cluster.source())

    assert history_of(armed) == sorted([*before, ("alpha", 1)])
    refused = rejects_of(armed, HISTORY_REFUSED)
    assert [r["uid"] for r in refused] == ["ars-bravo"]
    assert "too many runners for this database" in refused[0]["error"]
    assert current_runners(armed) == {"alpha": 1, "bravo": 2}  # the counts themselves are
    assert harness.writer.failed is None

    poison.cure(armed)
    clock.now += timedelta(seconds=10)
    harness.applier.flush()  # within the period: not yet
    assert ("bravo", 2) not in history_of(armed)
    clock.now += timedelta(minutes=1)
    harness.applier.flush()
    assert history_of(armed) == sorted([*before, ("alpha", 1), ("bravo", 2)])


def logged(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("kind", ["runner", "pool"])
def test_an_end_the_database_refuses_is_recorded_once_and_the_row_kept(
    armed: Engine, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    cluster, clock = TwoPools(), Clock()
    cluster.add_runner("bravo")
    harness = Harness(armed, clock=clock)
    harness.poll(cluster.source())
    table = SETS if kind == "pool" else "github_ephemeral_runner_states"
    uid = "ars-bravo" if kind == "pool" else "bravo-1"
    name = "bravo" if kind == "pool" else "bravo-abcde-runner-r1"
    poison.refuse_named(armed, table, name, "22023")
    if kind == "pool":
        del cluster.objects["ars-bravo"]
    else:
        del cluster.objects["bravo-1"]
    cluster.rv += 1
    source = cluster.source()
    result = harness.poll(source)

    assert result.rejected == 1
    refused = [r for r in rows(armed, "snapshotter_rejects") if r["uid"] == uid]
    assert [(r["namespace"], r["name"]) for r in refused] == [("arc-runners", name)]
    # the version of the list that showed it gone
    assert cluster.rv < int(refused[0]["resource_version"]) <= source.list_version
    row = next(r for r in rows(armed, table) if r["name"] == name)
    assert (row.get("is_deleted"), row.get("status")) != (True, "deleted")  # kept as it was

    resource = "autoscalingrunnersets" if kind == "pool" else "ephemeralrunners"
    metric = harness.applier.stats.registry.get_sample_value(
        "snapshotter_objects_rejected_total", {"resource": resource}
    )
    assert metric == 1

    clock.now += timedelta(seconds=10)
    assert harness.poll(cluster.source()).rejected == 0  # forgotten: not tried again
    assert logged(caplog, "object rejected by the database") == 1
