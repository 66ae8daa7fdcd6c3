"""A batch with several things in it: each write, count and summary figure of the
ChangeSet accounts for all of them, whatever their order in the batch."""

from typing import Any

from snapshotter.diff import counts
from snapshotter.diff.observed import Input, Vanished
from snapshotter.diff.rows import RunnerCounts
from snapshotter.diff.state import SyncState
from snapshotter.model.records import EPHEMERAL_RUNNER_SETS, RUNNER_SETS, RUNNERS, SetKey
from snapshotter.model.versions import Version
from tests.support import arc_objects as arc
from tests.support.observing import observed, runner_events
from tests.support.scenario import T0, T1, T2, diff, loaded


def test_the_change_set_is_dated_now_and_a_new_pool_starts_its_history(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    live = RunnerCounts(current=2, running=2, busy=1, desired=2)
    assert (state.written, state.histories, state.history_at) == (
        {"ars-1": live},
        {"ars-1": live},
        {"ars-1": T0},
    )
    changes, _ = diff(state, runner_events(T1, changed=[arc.bumped(cluster["idle"], "20")]), T1)
    assert changes.now == T1


def test_a_new_pool_without_an_ephemeral_runner_set_desires_none() -> None:
    pool = arc.runner_set(name="arc-gpu", uid="ars-gpu", rv="5")
    changes, _ = diff(SyncState(), [observed(RUNNER_SETS, pool, T1)], T1)
    [write] = changes.runner_sets
    assert (write.new, write.row.counts) == (True, RunnerCounts())
    [history] = changes.history
    assert (history.runner_set_uid, history.observed_at, history.desired_runners) == (
        "ars-gpu",
        T1,
        0,
    )


def test_a_new_pool_after_a_changed_one_still_gets_its_counts(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    changed = arc.bumped(cluster["ars"], "30", spec={"maxRunners": 99})
    gpu = arc.runner_set(name="arc-gpu", uid="ars-gpu", rv="31")
    batch = [observed(RUNNER_SETS, changed, T1), observed(RUNNER_SETS, gpu, T1)]
    changes, after = diff(state, batch, T1)
    assert [(w.row.uid, w.new, w.row.last_sync_at) for w in changes.runner_sets] == [
        ("ars-1", False, T1),
        ("ars-gpu", True, T1),
    ]
    assert [h.runner_set_uid for h in changes.history] == ["ars-gpu"]
    assert after.written["ars-gpu"] == RunnerCounts()


def test_a_pool_first_seen_being_deleted_gets_no_counts_or_history() -> None:
    pool = arc.runner_set(
        name="arc-gpu", uid="ars-gpu", rv="5", deletionTimestamp="2026-11-28T09:59:00Z"
    )
    changes, after = diff(SyncState(), [observed(RUNNER_SETS, pool, T1)], T1)
    [write] = changes.runner_sets
    assert (write.new, write.row.status) == (True, "deleted")
    assert changes.history == ()
    assert (after.runner_sets, after.written) == ({}, {})


def test_a_runner_seen_with_its_new_pool_belongs_to_it_by_its_labels(
    cluster: dict[str, Any],
) -> None:
    """No owner reference to follow (its EphemeralRunnerSet not seen yet): the
    scale-set labels name the pool that appeared in the same batch."""
    runner = arc.merged(cluster["idle"], {"metadata": {"ownerReferences": None}})
    batch = [observed(RUNNER_SETS, cluster["ars"], T0), observed(RUNNERS, runner, T0)]
    changes, after = diff(SyncState(), batch, T0)
    assert [w.row.runner_set_uid for w in changes.runners] == ["ars-1"]
    assert changes.runner_sets[0].row.current_runners == 1
    assert after.tallies["ars-1"].current == 1


def test_ephemeral_runner_sets_after_a_deleted_or_older_one_are_still_taken(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    ars = cluster["ars"]
    deleted = arc.bumped(cluster["ers"], "40")
    newer = arc.ephemeral_runner_set(ars, name="arc-linux-x64-new1", uid="ers-2", rv="41")
    batch: list[Input] = [
        observed(EPHEMERAL_RUNNER_SETS, deleted, T1, deleted=True),
        observed(EPHEMERAL_RUNNER_SETS, newer, T1),
    ]
    _, after = diff(state, batch, T1)
    assert set(after.ephemeral_runner_sets) == {"ers-2"}
    older = arc.bumped(cluster["ers"], "5")
    other = arc.ephemeral_runner_set(ars, name="arc-linux-x64-new2", uid="ers-3", rv="42")
    batch = [
        observed(EPHEMERAL_RUNNER_SETS, older, T1),
        observed(EPHEMERAL_RUNNER_SETS, other, T1),
    ]
    _, after = diff(state, batch, T1)
    assert set(after.ephemeral_runner_sets) == {"ers-1", "ers-3"}
    assert after.ephemeral_runner_sets["ers-1"].resource_version == "11"


def test_a_list_missing_an_ephemeral_runner_set_already_gone_changes_nothing(
    cluster: dict[str, Any],
) -> None:
    """The list was taken before a DELETED event that an earlier batch applied."""
    state = loaded(cluster)
    _, state = diff(state, [observed(EPHEMERAL_RUNNER_SETS, cluster["ers"], T1, deleted=True)], T1)
    missing = Vanished(EPHEMERAL_RUNNER_SETS, "ers-1", Version("1000000"), T2)
    changes, after = diff(state, [missing], T2)
    assert changes.delta.ephemeral_runner_sets.gone == {}
    assert after.ephemeral_runner_sets == {}


def test_the_summary_counts_every_completion_and_name_taken_in_the_batch(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    busy_gone = arc.bumped(cluster["busy"], "50")
    idle_changed = arc.bumped(cluster["idle"], "51", status={"ready": False})
    changes, _ = diff(state, runner_events(T1, changed=[idle_changed], deleted=[busy_gone]), T1)
    assert changes.completed == 1
    batch = [*runner_events(T1, deleted=[busy_gone]), *runner_events(T1, changed=[idle_changed])]
    changes, _ = diff(state, batch, T1)
    assert (changes.completed, changes.deleted) == (1, 1)
    assert [r.uid for r in changes.finished] == ["er-busy"]
    # two new runners taking the names of both live ones end both
    takers = [
        arc.ephemeral_runner(
            cluster["ers"],
            name=cluster[old]["metadata"]["name"],
            uid=f"er-new-{old}",
            rv=rv,
            created="2026-11-28T09:30:00Z",
        )
        for old, rv in (("idle", "60"), ("busy", "61"))
    ]
    changes, after = diff(state, runner_events(T1, changed=takers), T1)
    assert (changes.names_reused, changes.vanished) == (2, 2)
    assert set(after.runners) == {"er-new-idle", "er-new-busy"}


def test_a_deletion_learned_after_a_runner_vanished_is_not_counted_again(
    cluster: dict[str, Any],
) -> None:
    """Gone from a list, then its DELETED event (an older state, with the
    deletionTimestamp) arrives: the timestamp is filled in, nothing is deleted twice."""
    state = loaded(cluster)
    _, state = diff(state, [Vanished(RUNNERS, "er-idle", Version("1000000"), T1)], T1)
    deleting = arc.bumped(
        cluster["idle"], "14", metadata={"deletionTimestamp": "2026-11-28T10:00:05Z"}
    )
    changes, _ = diff(state, runner_events(T2, deleted=[deleting]), T2)
    [write] = changes.runners
    assert write.row.deletion_timestamp is not None
    assert (changes.deleted, changes.vanished, changes.completed) == (0, 0, 0)


def test_a_deleted_event_dates_the_runners_last_sighting(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    changes, _ = diff(state, runner_events(T1, deleted=[arc.bumped(cluster["idle"], "50")]), T1)
    [write] = changes.runners
    assert (write.row.is_deleted, write.row.last_seen_at, write.row.first_seen_at) == (
        True,
        T1,
        T0,
    )


def test_counts_of_a_new_pool_count_runners_seen_before_it(cluster: dict[str, Any]) -> None:
    changes, state = diff(SyncState(), runner_events(T0, changed=[cluster["busy"]]), T0)
    changes, state = diff(state, [observed(RUNNER_SETS, cluster["ars"], T1)], T1)
    assert changes.runner_sets[0].row.counts == RunnerCounts(current=1, running=1, busy=1)
    assert counts.live_counts(state)["ars-1"] == RunnerCounts(current=1, running=1, busy=1)


def test_a_name_taken_within_the_first_batch_leaves_one_live_runner(
    cluster: dict[str, Any],
) -> None:
    """A list showing a runner and the newer one that took its name (the older one
    has not left the list yet): one insert each, the older one gone, counted once."""
    name = cluster["idle"]["metadata"]["name"]
    newer = arc.ephemeral_runner(
        cluster["ers"], name=name, uid="er-newer", rv="80", created="2026-11-28T09:30:00Z"
    )
    batch = [
        observed(RUNNER_SETS, cluster["ars"], T0),
        observed(EPHEMERAL_RUNNER_SETS, cluster["ers"], T0),
        *runner_events(T0, changed=[cluster["idle"], newer, cluster["busy"]]),
    ]
    changes, after = diff(SyncState(), batch, T0)
    writes = [(w.row.uid, w.new, w.superseded, w.row.is_deleted) for w in changes.runners]
    assert writes == [
        ("er-idle", True, False, True),
        ("er-newer", True, False, False),
        ("er-busy", True, False, False),
    ]
    assert changes.runner_sets[0].row.current_runners == 2
    assert (changes.names_reused, changes.vanished, changes.deleted) == (1, 1, 1)
    assert set(after.runners) == {"er-newer", "er-busy"}
    assert after.tallies["ars-1"].current == 2


def test_an_older_runner_listed_after_the_holder_of_its_name_is_gone_at_first_sight(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    name = cluster["idle"]["metadata"]["name"]
    older = arc.ephemeral_runner(
        cluster["ers"], name=name, uid="er-older", rv="5", created="2026-11-28T08:00:00Z"
    )
    changes, _ = diff(state, runner_events(T1, changed=[older]), T1)
    [write] = changes.runners
    assert (write.new, write.superseded, write.row.is_deleted) == (True, True, True)
    assert (write.row.first_seen_at, write.row.last_seen_at) == (T1, T1)


def test_a_runner_whose_name_was_taken_stays_gone_when_its_update_follows(
    cluster: dict[str, Any],
) -> None:
    """In one batch: the newer runner with the idle one's name, then an update of
    the idle one (received before it was replaced)."""
    state = loaded(cluster)
    name = cluster["idle"]["metadata"]["name"]
    newer = arc.ephemeral_runner(
        cluster["ers"], name=name, uid="er-newer", rv="80", created="2026-11-28T09:30:00Z"
    )
    update = arc.bumped(cluster["idle"], "79", status={"ready": False})
    changes, after = diff(state, runner_events(T1, changed=[newer, update]), T1)
    rows = {w.row.uid: w for w in changes.runners}
    assert (rows["er-idle"].new, rows["er-idle"].row.is_deleted) == (False, True)
    assert (rows["er-newer"].new, rows["er-newer"].row.is_deleted) == (True, False)
    assert (changes.names_reused, changes.vanished, changes.deleted) == (1, 1, 1)
    assert set(after.runners) == {"er-newer", "er-busy"}
    assert after.live_names[("arc-runners", name)] == "er-newer"


def test_orphans_are_attached_to_their_new_pool_past_the_runners_of_other_pools(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    gpu = arc.runner_set(name="arc-gpu", uid="ars-gpu", rv="30")
    orphan = arc.merged(
        arc.ephemeral_runner(name="arc-gpu-runner-1", uid="er-gpu", rv="31"),
        {
            "metadata": {
                "ownerReferences": None,
                "labels": {
                    "actions.github.com/scale-set-name": "arc-gpu",
                    "actions.github.com/scale-set-namespace": "arc-runners",
                },
            }
        },
    )
    changes, state = diff(state, runner_events(T1, changed=[orphan]), T1)
    assert changes.runners[0].row.runner_set_uid is None
    changes, after = diff(state, [observed(RUNNER_SETS, gpu, T2)], T2)
    assert [(w.row.uid, w.new, w.row.runner_set_uid) for w in changes.runners] == [
        ("er-gpu", False, "ars-gpu")
    ]
    assert after.runners["er-idle"].runner_set_uid == "ars-1"
    assert after.tallies["ars-gpu"].current == 1


def test_a_pool_recreated_under_its_name_does_not_take_the_old_ones_runners(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    recreated = arc.runner_set(uid="ars-2", rv="30")
    batch = [
        observed(RUNNER_SETS, arc.bumped(cluster["ars"], "29"), T1, deleted=True),
        observed(RUNNER_SETS, recreated, T1),
    ]
    changes, after = diff(state, batch, T1)
    assert changes.runners == ()
    assert {r.runner_set_uid for r in after.runners.values()} == {"ars-1"}
    assert after.active_by_key[SetKey("arc-runners", "arc-linux-x64")] == "ars-2"
