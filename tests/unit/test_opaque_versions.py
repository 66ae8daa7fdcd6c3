"""Ordering where resourceVersions are not integers (SPEC §4.4): equality plus
arrival order. An observation with another RV that arrived after the stored one is
newer; one that arrived before it (handed over later, e.g. by a list taken
earlier) is older and never overwrites it; a list that began before the stored
observation arrived says nothing about the object's absence.

Each observation here carries its arrival order explicitly."""

from collections.abc import Callable, Mapping
from typing import Any

from snapshotter.diff.observed import Input, Observed, Vanished, sighting
from snapshotter.diff.rows import RunnerStateRow
from snapshotter.diff.state import SyncState
from snapshotter.model import parse
from snapshotter.model.records import EPHEMERAL_RUNNER_SETS, RUNNER_SETS, RUNNERS
from snapshotter.model.versions import Version
from tests.support import arc_objects as arc
from tests.support.scenario import T0, T1, T2, diff

_PARSERS: dict[str, Callable[[dict[str, Any]], parse.Parsed[Any]]] = {
    RUNNER_SETS: parse.parse_runner_set,
    EPHEMERAL_RUNNER_SETS: parse.parse_ephemeral_runner_set,
    RUNNERS: parse.parse_ephemeral_runner,
}


def seen(resource: str, raw: Mapping[str, Any], seq: int, at: Any, **kw: Any) -> Observed[Any]:
    record = _PARSERS[resource](dict(raw)).record
    rv = record.identity.resource_version
    return sighting(resource, record.identity.uid, record, version=Version(rv, seq), at=at, **kw)


def opaque_cluster() -> dict[str, Any]:
    """One pool, its EphemeralRunnerSet and two runners, all with opaque RVs."""
    ars = arc.runner_set(uid="ars-1", rv="p1")
    ers = arc.ephemeral_runner_set(ars, uid="ers-1", rv="e1", replicas=2)
    idle = arc.ephemeral_runner(
        ers, name="arc-linux-x64-7x9kq-runner-aaaaa", uid="er-idle", rv="r1"
    )
    busy = arc.with_job(
        arc.ephemeral_runner(ers, name="arc-linux-x64-7x9kq-runner-bbbbb", uid="er-busy", rv="b1")
    )
    return {"ars": ars, "ers": ers, "idle": idle, "busy": busy}


def first_batch(c: dict[str, Any]) -> list[Input]:
    return [
        seen(RUNNER_SETS, c["ars"], 10, T0),
        seen(EPHEMERAL_RUNNER_SETS, c["ers"], 11, T0),
        seen(RUNNERS, c["idle"], 12, T0),
        seen(RUNNERS, c["busy"], 13, T0),
    ]


def stored(c: dict[str, Any]) -> SyncState:
    _, state = diff(SyncState(), first_batch(c), T0)
    return state


def test_the_arrival_order_is_kept_for_opaque_versions_only() -> None:
    c = opaque_cluster()
    c["idle"] = arc.bumped(c["idle"], "12")  # an integer RV orders itself
    changes, state = diff(SyncState(), first_batch(c), T0)
    assert changes.delta.seqs == {"ars-1": 10, "ers-1": 11, "er-busy": 13}
    assert state.seqs == {"ars-1": 10, "ers-1": 11, "er-busy": 13}


def test_a_runner_observation_that_arrived_before_the_stored_one_is_older() -> None:
    c = opaque_cluster()
    state = stored(c)
    earlier = arc.bumped(c["idle"], "r0", status={"phase": "Pending", "ready": False})
    changes, after = diff(state, [seen(RUNNERS, earlier, 5, T1)], T1)
    assert not changes.writes_rows
    assert after.runners["er-idle"].phase == "Running"
    assert after.seqs["er-idle"] == 12  # the stored observation's arrival stays
    later = arc.bumped(c["idle"], "r2", status={"phase": "Pending", "ready": False})
    changes, after = diff(state, [seen(RUNNERS, later, 20, T1)], T1)
    [write] = changes.runners
    assert (write.row.phase, write.row.resource_version, write.row.last_seen_at) == (
        "Pending",
        "r2",
        T1,
    )
    assert after.seqs["er-idle"] == 20


def test_a_list_begun_before_a_runner_was_observed_does_not_vanish_it() -> None:
    c = opaque_cluster()
    state = stored(c)
    early_list = Vanished(RUNNERS, "er-idle", Version("list-1", 12 - 1), T1)
    changes, after = diff(state, [early_list], T1)
    assert not changes.writes_rows
    assert "er-idle" in after.runners
    late_list = Vanished(RUNNERS, "er-idle", Version("list-2", 30), T1)
    changes, after = diff(state, [late_list], T1)
    [write] = changes.runners
    assert (write.row.is_deleted, write.row.resource_version) == (True, "list-2")
    assert "er-idle" not in after.runners


def test_a_list_begun_before_the_observation_in_the_same_batch_does_not_vanish_it() -> None:
    c = opaque_cluster()
    state = stored(c)
    newer = arc.bumped(c["idle"], "r2", status={"phase": "Pending", "ready": False})
    batch: list[Input] = [
        seen(RUNNERS, newer, 25, T1),
        Vanished(RUNNERS, "er-idle", Version("list-1", 20), T1),
    ]
    changes, after = diff(state, batch, T1)
    [write] = changes.runners
    assert (write.row.is_deleted, write.row.phase) == (False, "Pending")
    assert "er-idle" in after.runners


def test_a_pool_observation_that_arrived_before_the_stored_one_is_older() -> None:
    c = opaque_cluster()
    state = stored(c)
    earlier = arc.bumped(c["ars"], "p0", spec={"maxRunners": 99})
    changes, after = diff(state, [seen(RUNNER_SETS, earlier, 5, T1)], T1)
    assert changes.runner_sets == ()
    assert after.runner_sets["ars-1"].max_runners != 99
    later = arc.bumped(c["ars"], "p2", spec={"maxRunners": 99})
    changes, after = diff(state, [seen(RUNNER_SETS, later, 20, T1)], T1)
    [write] = changes.runner_sets
    assert (write.row.max_runners, write.row.resource_version) == (99, "p2")


def test_a_list_begun_before_a_pool_was_observed_does_not_delete_it() -> None:
    c = opaque_cluster()
    state = stored(c)
    changes, after = diff(state, [Vanished(RUNNER_SETS, "ars-1", Version("list-1", 9), T1)], T1)
    assert changes.runner_sets == ()
    assert "ars-1" in after.runner_sets
    changes, after = diff(state, [Vanished(RUNNER_SETS, "ars-1", Version("list-2", 30), T1)], T1)
    [write] = changes.runner_sets
    assert (write.row.status, write.row.deleted_at, write.row.resource_version) == (
        "deleted",
        T1,
        "list-2",
    )
    # observed again in the same batch, after that list began: still there
    later = arc.bumped(c["ars"], "p2", spec={"maxRunners": 99})
    batch: list[Input] = [
        seen(RUNNER_SETS, later, 40, T1),
        Vanished(RUNNER_SETS, "ars-1", Version("list-3", 35), T1),
    ]
    changes, after = diff(state, batch, T1)
    [write] = changes.runner_sets
    assert (write.row.status, write.row.max_runners) == ("active", 99)


def test_an_ephemeral_runner_set_observation_that_arrived_earlier_is_older() -> None:
    c = opaque_cluster()
    state = stored(c)
    earlier = arc.bumped(c["ers"], "e0", spec={"replicas": 7})
    _, after = diff(state, [seen(EPHEMERAL_RUNNER_SETS, earlier, 5, T1)], T1)
    assert after.ephemeral_runner_sets["ers-1"].replicas == 2
    later = arc.bumped(c["ers"], "e2", spec={"replicas": 7})
    _, after = diff(state, [seen(EPHEMERAL_RUNNER_SETS, later, 20, T1)], T1)
    assert after.ephemeral_runner_sets["ers-1"].replicas == 7


def test_a_deleted_runner_remembers_when_its_last_observation_arrived() -> None:
    """A list taken before the deletion and handed over after it shows an older
    state with another RV: it does not rewrite the deleted runner."""
    c = opaque_cluster()
    state = stored(c)
    gone = arc.bumped(c["idle"], "r3")
    _, state = diff(state, [seen(RUNNERS, gone, 30, T1, deleted=True)], T1)
    assert "er-idle" not in state.seqs
    assert state.gone.seq("er-idle") == 30
    from_old_list = arc.bumped(c["idle"], "r2", status={"phase": "Pending", "ready": False})
    changes, _ = diff(state, [seen(RUNNERS, from_old_list, 25, T2)], T2)
    assert not changes.writes_rows


def test_a_runner_taking_the_name_of_one_with_an_opaque_version_ends_it() -> None:
    c = opaque_cluster()
    state = stored(c)
    idle = c["idle"]
    newer = arc.ephemeral_runner(
        c["ers"],
        name=idle["metadata"]["name"],
        uid="er-newer",
        rv="n1",
        created="2026-11-28T09:30:00Z",
    )
    changes, after = diff(state, [seen(RUNNERS, newer, 40, T1)], T1)
    rows: dict[str, RunnerStateRow] = {w.row.uid: w.row for w in changes.runners}
    assert (rows["er-idle"].is_deleted, rows["er-idle"].last_seen_at) == (True, T1)
    assert rows["er-idle"].resource_version == "r1"
    assert not rows["er-newer"].is_deleted
    assert set(after.runners) == {"er-busy", "er-newer"}
