"""The in-memory state the diff reads: adopting committed deltas, the tallies of
live runners per pool, and the bounded memory of deleted objects."""

from dataclasses import replace
from typing import Any

from snapshotter.diff.rows import RunnerSetRow, RunnerStateRow, Tally
from snapshotter.diff.state import (
    MapDelta,
    StateDelta,
    SyncState,
    Tombstones,
    apply_delta,
    tally_of,
)
from snapshotter.model import parse
from snapshotter.model.records import EPHEMERAL_RUNNER_SETS, RUNNER_SETS, RUNNERS, SetKey
from snapshotter.model.versions import Version
from tests.support import arc_objects as arc
from tests.support.scenario import T0, loaded

POOL_KEY = SetKey("arc-runners", "arc-linux-x64")


def test_tombstones_forget_the_oldest_past_their_limit() -> None:
    tombstones = Tombstones(limit=2)
    version = Version("1")
    tombstones.put((RUNNERS, "a"), version)
    tombstones.note_seq("a", 7)
    tombstones.put((RUNNERS, "b"), version)
    assert tombstones.seq("a") == 7
    tombstones.put((RUNNERS, "a"), version)  # put again: now the newest
    tombstones.put((RUNNERS, "c"), version)
    assert ((RUNNERS, "b") in tombstones, len(tombstones)) == (False, 2)
    assert tombstones.get((RUNNERS, "a")) == version
    assert tombstones.get((RUNNERS, "c")) == version
    tombstones.put((RUNNERS, "d"), version)
    assert [(RUNNERS, u) in tombstones for u in "abcd"] == [False, False, True, True]
    assert tombstones.seq("a") == 0  # forgotten with its tombstone


def runner_row(cluster: dict[str, Any], **kw: Any) -> RunnerStateRow:
    return replace(loaded(cluster).runners["er-idle"], **kw)


def test_a_live_runner_counts_by_its_phase_and_job(cluster: dict[str, Any]) -> None:
    # ARC counts a runner with no phase yet as pending
    assert tally_of(runner_row(cluster, phase=None)) == Tally(current=1, pending=1)
    assert tally_of(runner_row(cluster, phase="Pending")) == Tally(current=1, pending=1)
    assert tally_of(runner_row(cluster, phase="Running")) == Tally(current=1, running=1)
    assert tally_of(runner_row(cluster, phase="Failed")) == Tally(current=1, failed=1)
    busy = loaded(cluster).runners["er-busy"]
    assert tally_of(busy) == Tally(current=1, running=1, busy=1)
    assert tally_of(replace(busy, runner_set_uid=None)) == Tally()
    assert tally_of(replace(busy, is_deleted=True)) == Tally()
    assert tally_of(replace(busy, deletion_timestamp=T0)) == Tally()


def pool(cluster: dict[str, Any], uid: str) -> RunnerSetRow:
    row = loaded(cluster).runner_sets["ars-1"]
    return replace(row, uid=uid)


def test_a_deleted_pool_gives_up_its_name(cluster: dict[str, Any]) -> None:
    state = SyncState()
    apply_delta(state, StateDelta(runner_sets=MapDelta(put={"ars-1": pool(cluster, "ars-1")})))
    assert state.active_by_key == {POOL_KEY: "ars-1"}
    gone = replace(pool(cluster, "ars-1"), status="deleted")
    apply_delta(state, StateDelta(runner_sets=MapDelta(gone={"ars-1": gone})))
    assert (state.active_by_key, state.runner_sets) == ({}, {})
    assert state.gone.get((RUNNER_SETS, "ars-1")) == gone


def test_a_pool_recreated_under_its_name_keeps_the_name_when_the_old_one_goes(
    cluster: dict[str, Any],
) -> None:
    state = SyncState()
    apply_delta(state, StateDelta(runner_sets=MapDelta(put={"ars-1": pool(cluster, "ars-1")})))
    apply_delta(state, StateDelta(runner_sets=MapDelta(put={"ars-2": pool(cluster, "ars-2")})))
    assert state.active_by_key == {POOL_KEY: "ars-2"}
    gone = replace(pool(cluster, "ars-1"), status="deleted")
    apply_delta(state, StateDelta(runner_sets=MapDelta(gone={"ars-1": gone})))
    assert state.active_by_key == {POOL_KEY: "ars-2"}
    assert set(state.runner_sets) == {"ars-2"}


def test_a_deleted_runner_gives_up_its_name_unless_a_newer_one_holds_it(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    idle = state.runners["er-idle"]
    key = (idle.namespace, idle.name)
    assert state.live_names[key] == "er-idle"
    apply_delta(
        state,
        StateDelta(runners=MapDelta(gone={"er-idle": replace(idle, is_deleted=True)})),
    )
    assert key not in state.live_names
    assert state.tallies["ars-1"] == Tally(current=1, running=1, busy=1)
    # the busy runner's name, taken by a newer runner before the older one's deletion
    busy = state.runners["er-busy"]
    newer = replace(busy, uid="er-newer", job_id=None, job_request_id=None)
    newer = replace(newer, job_workflow_run_id=None)
    apply_delta(state, StateDelta(runners=MapDelta(put={"er-newer": newer})))
    apply_delta(
        state,
        StateDelta(runners=MapDelta(gone={"er-busy": replace(busy, is_deleted=True)})),
    )
    assert state.live_names[(busy.namespace, busy.name)] == "er-newer"
    assert state.tallies["ars-1"] == Tally(current=1, running=1)


def test_removing_what_the_state_does_not_hold_changes_nothing_else(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    ers = parse.parse_ephemeral_runner_set(
        arc.ephemeral_runner_set(cluster["ars"], name="other", uid="ers-9", rv="90")
    ).record
    apply_delta(state, StateDelta(ephemeral_runner_sets=MapDelta(gone={"ers-9": ers})))
    assert set(state.ephemeral_runner_sets) == {"ers-1"}
    assert state.gone.get((EPHEMERAL_RUNNER_SETS, "ers-9")) == Version("90")


def test_a_deleted_objects_arrival_order_moves_to_its_tombstone(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    apply_delta(state, StateDelta(seqs={"er-idle": 41, "er-busy": 42}))
    idle = replace(state.runners["er-idle"], is_deleted=True)
    apply_delta(state, StateDelta(runners=MapDelta(gone={"er-idle": idle})))
    assert state.seqs == {"er-busy": 42}
    assert (state.gone.seq("er-idle"), state.gone.seq("er-busy")) == (41, 0)
