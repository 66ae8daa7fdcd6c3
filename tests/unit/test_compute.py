"""The diff, the completion rule and the ordering rules, with `now` passed in.

Each test starts from a state, applies one batch of observations and checks the
exact rows the ChangeSet would write and the state it leaves.
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from snapshotter.diff import counts, mapping
from snapshotter.diff.changes import ChangeSet, RowWrite
from snapshotter.diff.mapping import Layered
from snapshotter.diff.observed import Vanished
from snapshotter.diff.rows import (
    RunnerCounts,
    RunnerSetHistoryRow,
    RunnerSetRow,
    RunnerStateRow,
    Tally,
    WorkflowRunRow,
)
from snapshotter.diff.state import MapDelta, StateDelta, SyncState
from snapshotter.model import parse
from snapshotter.model.records import EPHEMERAL_RUNNER_SETS, RUNNER_SETS, RUNNERS
from snapshotter.model.versions import Version
from tests.support import arc_objects as arc
from tests.support.observing import full_list, observed, runner_events
from tests.support.scenario import (
    CI_CONFIG,
    DEPLOY_CONFIG,
    T0,
    T1,
    T2,
    diff,
    listed,
    loaded,
)


def runner_write(changes: ChangeSet, uid: str) -> RunnerStateRow:
    [row] = [w.row for w in changes.runners if w.row.uid == uid]
    return row


def test_first_list_inserts_everything(cluster: dict[str, Any]) -> None:
    changes, state = diff(
        SyncState(), listed(SyncState(), cluster, cluster["idle"], cluster["busy"], at=T0), T0
    )
    assert [(w.row.uid, w.new) for w in changes.runner_sets] == [("ars-1", True)]
    pool = changes.runner_sets[0].row
    assert (pool.current_runners, pool.running_runners, pool.busy_runners) == (2, 2, 1)
    assert (pool.pending_runners, pool.failed_runners, pool.desired_runners) == (0, 0, 2)
    assert (pool.status, pool.cluster_name, pool.github_owner) == ("active", "prod", "acme-corp")
    assert pool.last_sync_at == T0
    runners = {w.row.uid: w.row for w in changes.runners}
    assert set(runners) == {"er-idle", "er-busy"}
    assert all(w.new for w in changes.runners)
    assert runners["er-busy"].job_assigned_at == T0
    assert runners["er-idle"].job_assigned_at is None
    assert runners["er-busy"].runner_set_uid == "ars-1"
    assert (runners["er-busy"].first_seen_at, runners["er-busy"].last_seen_at) == (T0, T0)
    # the run facts are resolved into the state row, for later runs
    assert (runners["er-busy"].workflow_name, runners["er-busy"].head_branch) == ("ci.yaml", "main")
    assert runners["er-busy"].github_run_id == 15320047781
    assert not any(r.is_completed for r in runners.values())
    assert changes.runs == ()
    assert [h.busy_runners for h in changes.history] == [1]
    assert set(state.runners) == {"er-idle", "er-busy"}
    assert set(state.ephemeral_runner_sets) == {"ers-1"}
    assert state.tallies["ars-1"].busy == 1


def test_nothing_changed_gives_an_empty_change_set(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    changes, after = diff(
        state, listed(state, cluster, cluster["idle"], cluster["busy"], at=T1), T1
    )
    assert not changes.writes_rows
    assert changes.summary() == dict.fromkeys(changes.summary(), 0)
    assert after.runners == state.runners
    assert counts.counts_due(after, now=T1).runner_sets == ()


def test_job_fields_arriving_update_the_runner_and_then_the_pool(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    got_job = arc.with_job(arc.bumped(cluster["idle"], "20"), jobId="job-2", workflowRunId=99)
    changes, after = diff(state, runner_events(T1, changed=[got_job]), T1)
    [write] = changes.runners
    assert not write.new
    row = write.row
    assert (row.job_id, row.job_workflow_run_id, row.github_run_id) == ("job-2", 99, 99)
    assert (row.job_assigned_at, row.last_seen_at, row.first_seen_at) == (T1, T1, T0)
    assert row.resource_version == "20"
    assert changes.runner_sets == ()  # counts reach the pool row when they are due
    due = counts.counts_due(after, now=T2, period=timedelta(seconds=10))
    [pool] = due.runner_sets
    assert pool.row.busy_runners == 2
    assert [h.busy_runners for h in due.history] == [2]


def test_pool_counts_are_written_at_most_once_per_period(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)  # its first history row was written at T0
    got_job = arc.with_job(arc.bumped(cluster["idle"], "20"), jobId="job-2")
    _, after = diff(state, runner_events(T1, changed=[got_job]), T1)
    period = timedelta(seconds=30)
    assert counts.counts_due(after, now=T1, period=period).history == ()
    later = counts.counts_due(after, now=T0 + period, period=period)
    assert [h.busy_runners for h in later.history] == [2]


def test_job_assigned_at_never_moves(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    later = arc.bumped(cluster["busy"], "30", status={"ready": False})
    changes, after = diff(state, runner_events(T2, changed=[later]), T2)
    assert runner_write(changes, "er-busy").job_assigned_at == T0
    assert after.runners["er-busy"].job_assigned_at == T0


def test_deletion_timestamp_on_a_busy_runner_completes_it(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    deleting = arc.bumped(
        cluster["busy"], "40", metadata={"deletionTimestamp": "2026-11-28T10:00:07Z"}
    )
    changes, after = diff(state, runner_events(T1, changed=[deleting]), T1)
    row = runner_write(changes, "er-busy")
    assert (row.is_completed, row.completion_source) == (True, "deleted")
    assert row.completed_at == datetime(2026, 11, 28, 10, 0, 7, tzinfo=UTC)
    assert row.is_deleted is False  # still exists, being deleted
    [run] = changes.runs
    assert run.config_id == CI_CONFIG.id
    assert (run.workload_uid, run.workload_name) == ("er-busy", "arc-linux-x64-7x9kq-runner-bbbbb")
    assert (run.github_run_id, run.head_branch, run.workflow_name) == (
        15320047781,
        "main",
        "ci.yaml",
    )
    assert run.workflow_path == ".github/workflows/ci.yaml"
    assert run.workload_completed_at == datetime(2026, 11, 28, 10, 0, 7, tzinfo=UTC)
    assert run.workload_started_at == datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    assert (run.status, run.trigger_source, run.completion_source) == (
        "pending",
        "realtime",
        "deleted",
    )
    assert run.job_assigned_at == T0
    assert run.runner_set_uid == "ars-1"
    assert changes.completed == 1
    assert after.tallies["ars-1"].current == 1  # being deleted: no longer counted
    # the DELETED event that follows records the deletion and nothing else
    gone = arc.bumped(deleting, "41", metadata={"finalizers": []})
    changes2, after2 = diff(after, runner_events(T2, deleted=[gone]), T2)
    assert changes2.runs == ()
    assert [w.row.is_deleted for w in changes2.runners] == [True]
    assert "er-busy" not in after2.runners


def test_deleted_event_of_a_busy_runner_completes_it_at_receipt_time(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    changes, after = diff(state, runner_events(T1, deleted=[arc.bumped(cluster["busy"], "50")]), T1)
    row = runner_write(changes, "er-busy")
    assert (row.completion_source, row.completed_at, row.is_deleted) == ("deleted", T1, True)
    assert [r.config_id for r in changes.runs] == [CI_CONFIG.id]
    assert "er-busy" not in after.runners
    assert after.gone.get((RUNNERS, "er-busy")) == row  # a tombstone, for ordering


def test_runner_absent_from_a_full_list_vanished(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    changes, after = diff(state, listed(state, cluster, at=T2), T2)
    rows = {w.row.uid: w.row for w in changes.runners}
    busy = rows["er-busy"]
    assert (busy.completion_source, busy.completed_at, busy.is_deleted) == ("vanished", T2, True)
    assert busy.resource_version == "1000000"  # the list's RV is the deletion's
    # the idle one never had a job: deleted, not completed, no run
    assert (rows["er-idle"].is_deleted, rows["er-idle"].is_completed) == (True, False)
    [run] = changes.runs
    assert (run.workload_uid, run.completion_source, run.head_branch) == (
        "er-busy",
        "vanished",
        "main",
    )
    assert (changes.vanished, changes.completed, changes.deleted) == (2, 1, 2)
    assert after.runners == {}


def test_idle_runner_created_and_deleted_produces_no_run(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    churn = arc.ephemeral_runner(
        cluster["ers"], name="arc-linux-x64-7x9kq-runner-ccccc", uid="er-churn", rv="60", status={}
    )
    changes, after = diff(state, runner_events(T1, changed=[churn]), T1)
    assert [(w.row.uid, w.new) for w in changes.runners] == [("er-churn", True)]
    changes, after = diff(after, runner_events(T2, deleted=[arc.bumped(churn, "61")]), T2)
    assert changes.runs == ()
    assert changes.completed == 0
    assert [w.row.is_deleted for w in changes.runners] == [True]


def test_runner_born_and_gone_within_one_batch_is_recorded(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    quick = arc.with_job(
        arc.ephemeral_runner(
            cluster["ers"], name="arc-linux-x64-7x9kq-runner-ddddd", uid="er-quick", rv="70"
        )
    )
    changes, after = diff(state, runner_events(T1, deleted=[quick]), T1)
    [write] = changes.runners
    assert write.new
    assert (write.row.is_deleted, write.row.completion_source) == (True, "deleted")
    assert [r.workload_uid for r in changes.runs] == ["er-quick"]
    assert "er-quick" not in after.runners


def test_a_job_seen_with_its_deletion_is_not_assigned_after_the_end(
    cluster: dict[str, Any],
) -> None:
    """The deletionTimestamp has whole seconds: the job's receipt can be later."""
    state = loaded(cluster)
    job_at = T1 + timedelta(milliseconds=400)
    quick = arc.with_job(
        arc.ephemeral_runner(
            cluster["ers"],
            name="quick",
            uid="er-quick",
            rv="70",
            deletionTimestamp=T1.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    )
    changes, _ = diff(state, runner_events(job_at, changed=[quick]), job_at)
    [write] = changes.runners
    assert write.row.completed_at == T1  # the API server's own time
    assert write.row.job_assigned_at == T1  # the job ran by then: clamped down to it
    assert changes.runs[0].job_assigned_at == T1


def test_a_stored_job_time_moves_a_whole_second_completion_up_to_it(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)  # the busy runner's job was seen at T0
    later = T0 + timedelta(milliseconds=600)
    state.runners["er-busy"] = replace(state.runners["er-busy"], job_assigned_at=later)
    deleting = arc.bumped(
        cluster["busy"], "40", metadata={"deletionTimestamp": "2026-11-28T10:00:00Z"}
    )
    changes, _ = diff(state, runner_events(T1, changed=[deleting]), T1)
    row = runner_write(changes, "er-busy")
    assert (row.job_assigned_at, row.completed_at) == (later, later)  # the job time stays


def test_succeeded_phase_completes_once_even_without_job_fields(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    # ARC <= 0.12: exit 0 after its job -> Succeeded; here the listener's job fields were lost
    succeeded = arc.bumped(cluster["idle"], "80", status={"phase": "Succeeded"})
    changes, after = diff(state, runner_events(T1, changed=[succeeded]), T1)
    row = runner_write(changes, "er-idle")
    assert (row.completion_source, row.completed_at) == ("phase", T1)
    # workflow unknown: every in-scope config matches; the other cluster's does not
    assert sorted(r.config_id for r in changes.runs) == [CI_CONFIG.id, DEPLOY_CONFIG.id]
    changes, _ = diff(after, runner_events(T2, deleted=[arc.bumped(succeeded, "81")]), T2)
    assert changes.runs == ()
    assert changes.completed == 0


def test_failed_runner_without_a_job_completes_without_a_run(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    failed = arc.bumped(
        cluster["idle"], "90", status={"phase": "Failed", "reason": "InvalidPod", "ready": False}
    )
    changes, after = diff(state, runner_events(T1, changed=[failed]), T1)
    row = runner_write(changes, "er-idle")
    assert (row.is_completed, row.completion_source, row.reason) == (True, "phase", "InvalidPod")
    assert changes.runs == ()
    assert (after.tallies["ars-1"].failed, after.tallies["ars-1"].running) == (1, 1)


def test_outdated_runner_without_job_is_not_finished(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    outdated = arc.bumped(cluster["idle"], "91", status={"phase": "Outdated"})
    changes, after = diff(state, runner_events(T1, changed=[outdated]), T1)
    assert changes.completed == 0
    changes, _ = diff(after, runner_events(T2, deleted=[arc.bumped(outdated, "92")]), T2)
    assert (changes.completed, changes.runs) == (0, ())


def test_only_a_changed_resource_version_writes_nothing(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    relabelled = arc.bumped(cluster["idle"], "95", metadata={"labels": {"team": "other"}})
    changes, after = diff(state, runner_events(T1, changed=[relabelled]), T1)
    assert not changes.writes_rows
    assert after.runners["er-idle"].resource_version == "95"  # not re-mapped next time


def test_branch_and_workflow_filters_choose_configs(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    deploy = arc.ephemeral_runner(cluster["ers"], name="deploy", uid="er-deploy", rv="100")
    deploy = arc.with_job(
        deploy, jobWorkflowRef="acme-corp/infra/.github/workflows/deploy.yaml@refs/tags/v2"
    )
    changes, _ = diff(state, runner_events(T1, deleted=[deploy]), T1)
    assert [(r.config_id, r.head_branch) for r in changes.runs] == [
        (DEPLOY_CONFIG.id, "refs/tags/v2")
    ]


def test_annotations_fill_run_fields(cluster: dict[str, Any]) -> None:
    annotated = arc.with_job(
        arc.ephemeral_runner(
            cluster["ers"],
            name="annotated",
            uid="er-annotated",
            rv="110",
            annotations={
                "actions.github.com/run-number": "42",
                "actions.github.com/job-id": "987",
                "actions.github.com/sha": "abc123",
                "actions.github.com/branch": "release/1.x",
                "actions.github.com/workflow": "CI",
            },
        )
    )
    changes, _ = diff(loaded(cluster), runner_events(T1, deleted=[annotated]), T1)
    # workflow name "CI" still matches config "ci.yaml" through the workflow file
    [run] = changes.runs
    assert (run.github_run_number, run.github_job_id, run.head_sha) == (42, 987, "abc123")
    assert (run.head_branch, run.workflow_name) == ("release/1.x", "CI")


def test_a_vanished_runner_keeps_its_annotation_facts(cluster: dict[str, Any]) -> None:
    annotated = arc.with_job(
        arc.ephemeral_runner(
            cluster["ers"],
            name="annotated",
            uid="er-annotated",
            rv="110",
            annotations={"actions.github.com/run-number": "42", "actions.github.com/sha": "abc"},
        )
    )
    _, state = diff(loaded(cluster), runner_events(T1, changed=[annotated]), T1)
    # a restart later: the runner is gone, only its stored row tells the run
    changes, _ = diff(state, listed(state, cluster, cluster["idle"], cluster["busy"], at=T2), T2)
    [run] = [r for r in changes.runs if r.workload_uid == "er-annotated"]
    assert (run.completion_source, run.github_run_number, run.head_sha) == ("vanished", 42, "abc")


def test_runner_set_deletion_and_recreation(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    changes, after = diff(state, full_list(state, T1), T1)
    [pool] = [w.row for w in changes.runner_sets]
    assert (pool.status, pool.deleted_at) == ("deleted", T1)
    assert after.runner_sets == {}
    reborn = arc.runner_set(uid="ars-2", rv="200")
    changes, after = diff(after, full_list(after, T2, runner_sets=[reborn]), T2)
    assert [(w.row.uid, w.new) for w in changes.runner_sets] == [("ars-2", True)]
    assert set(after.runner_sets) == {"ars-2"}


def test_runner_set_with_deletion_timestamp_is_deleted(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    deleting = arc.bumped(
        cluster["ars"], "300", metadata={"deletionTimestamp": "2026-11-28T10:00:09Z"}
    )
    everything: dict[str, Any] = {
        "runner_sets": [deleting],
        "ephemeral_runner_sets": [cluster["ers"]],
        "runners": [cluster["idle"], cluster["busy"]],
    }
    changes, after = diff(state, full_list(state, T1, **everything), T1)
    [pool] = [w.row for w in changes.runner_sets]
    assert pool.status == "deleted"
    assert pool.deleted_at == datetime(2026, 11, 28, 10, 0, 9, tzinfo=UTC)
    assert changes.history == ()
    # still listed while its finalizer runs: nothing more to write, counts included
    again, after2 = diff(after, full_list(after, T2, **everything), T2)
    assert not again.writes_rows
    assert counts.counts_due(after2, now=T2).runner_sets == ()


def test_desired_count_comes_from_the_newest_ephemeral_runner_set(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    newer = arc.ephemeral_runner_set(
        cluster["ars"],
        name="arc-linux-x64-zzzzz",
        uid="ers-2",
        rv="400",
        replicas=5,
        created="2026-11-28T09:30:00Z",
    )
    _, after = diff(state, [observed("ephemeralrunnersets", newer, T1)], T1)
    [pool] = counts.counts_due(after, now=T1).runner_sets
    assert pool.row.desired_runners == 5


def test_runners_seen_before_their_pool_are_attached_when_it_appears(
    cluster: dict[str, Any],
) -> None:
    changes, state = diff(SyncState(), runner_events(T0, changed=[cluster["idle"]]), T0)
    assert changes.runners[0].row.runner_set_uid is None
    changes, state = diff(state, [observed("autoscalingrunnersets", cluster["ars"], T1)], T1)
    assert [(w.row.uid, w.row.runner_set_uid) for w in changes.runners] == [("er-idle", "ars-1")]
    assert changes.runner_sets[0].row.current_runners == 1


def test_replaying_the_same_events_changes_nothing(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    changes, after = diff(state, runner_events(T1, changed=[cluster["busy"]]), T1)
    assert not changes.writes_rows
    assert after.runners == state.runners


def test_an_older_observation_never_overwrites_newer_state(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    newer = arc.bumped(cluster["idle"], "30", status={"phase": "Pending", "ready": False})
    _, state = diff(state, runner_events(T1, changed=[newer]), T1)
    older = arc.bumped(cluster["idle"], "20", status={"phase": "Running", "ready": True})
    changes, after = diff(state, runner_events(T2, changed=[older]), T2)
    assert not changes.writes_rows
    assert (after.runners["er-idle"].phase, after.runners["er-idle"].resource_version) == (
        "Pending",
        "30",
    )


def test_an_older_observation_fills_a_fact_still_unknown(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    newer = arc.bumped(cluster["idle"], "30", status={"phase": "Pending"})
    _, state = diff(state, runner_events(T1, changed=[newer]), T1)
    older_with_job = arc.with_job(arc.bumped(cluster["idle"], "25"), jobId="job-late")
    changes, _ = diff(state, runner_events(T2, changed=[older_with_job]), T2)
    row = runner_write(changes, "er-idle")
    assert (row.job_id, row.job_assigned_at, row.phase) == ("job-late", T2, "Pending")
    assert row.resource_version == "30"


def test_a_stale_observation_does_not_resurrect_a_deleted_runner(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    _, state = diff(state, runner_events(T1, deleted=[arc.bumped(cluster["busy"], "50")]), T1)
    stale = arc.bumped(cluster["busy"], "45", status={"phase": "Pending"})
    changes, after = diff(state, runner_events(T2, changed=[stale]), T2)
    assert not changes.writes_rows
    assert changes.runs == ()
    assert "er-busy" not in after.runners
    assert after.tallies["ars-1"].current == 1


def test_a_replayed_deletion_after_vanishing_changes_no_fact(cluster: dict[str, Any]) -> None:
    """The watch was away: a poll declared the busy runner vanished; then the resumed
    watch replays its DELETED event. The completion stays as recorded."""
    state = loaded(cluster)
    changes, state = diff(state, listed(state, cluster, cluster["idle"], at=T1), T1)
    assert len(changes.runs) == 1
    replayed = arc.bumped(cluster["busy"], "14")
    changes, after = diff(state, runner_events(T2, deleted=[replayed]), T2)
    assert not changes.writes_rows
    gone = after.gone.get((RUNNERS, "er-busy"))
    assert isinstance(gone, RunnerStateRow)
    assert (gone.completion_source, gone.completed_at, gone.job_assigned_at) == (
        "vanished",
        T1,
        T0,
    )


def test_a_deletion_with_the_job_seen_late_still_records_the_run(cluster: dict[str, Any]) -> None:
    """A runner stored without its job vanished (no run); the replayed DELETED event
    carries its last state, with the job: the run is recorded after all."""
    state = loaded(cluster)
    _, state = diff(state, listed(state, cluster, cluster["busy"], at=T1), T1)
    assert "er-idle" not in state.runners
    last_state = arc.with_job(arc.bumped(cluster["idle"], "16"), jobId="job-late")
    changes, _ = diff(state, runner_events(T2, deleted=[last_state]), T2)
    row = runner_write(changes, "er-idle")
    assert (row.job_id, row.completion_source, row.completed_at) == ("job-late", "deleted", T2)
    assert [r.workload_uid for r in changes.runs] == ["er-idle"]


def test_a_list_does_not_vanish_what_was_observed_after_it_began(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    newcomer = arc.ephemeral_runner(cluster["ers"], name="new", uid="er-new", rv="2000000")
    _, state = diff(state, runner_events(T1, changed=[newcomer]), T1)
    late = Vanished(RUNNERS, "er-new", Version("1000000", 1), T2)  # a list taken earlier
    changes, after = diff(state, [late], T2)
    assert not changes.writes_rows
    assert "er-new" in after.runners


def test_persisted_row_of_a_completed_runner_keeps_its_completion(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    done = replace(
        state.runners["er-busy"], is_completed=True, completed_at=T0, completion_source="phase"
    )
    state.runners["er-busy"] = done
    changes, _ = diff(state, listed(state, cluster, cluster["idle"], at=T1), T1)
    assert changes.runs == ()
    assert changes.completed == 0


def taking_the_name_of(
    holder: dict[str, Any], cluster: dict[str, Any], *, uid: str, rv: str, created: str
) -> dict[str, Any]:
    """Another runner of the pool with `holder`'s name (ARC may generate one again)."""
    name = holder["metadata"]["name"]
    return arc.ephemeral_runner(cluster["ers"], name=name, uid=uid, rv=rv, created=created)


def test_a_new_runner_taking_a_live_runners_name_ends_the_older_one(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    idle = cluster["idle"]
    newer = taking_the_name_of(
        idle, cluster, uid="er-newer", rv="80", created="2026-11-28T09:30:00Z"
    )
    changes, after = diff(state, runner_events(T1, changed=[newer]), T1)
    rows = {w.row.uid: w for w in changes.runners}
    # gone as of the newer runner's first sighting
    assert (rows["er-idle"].row.is_deleted, rows["er-idle"].row.last_seen_at) == (True, T1)
    assert rows["er-idle"].row.resource_version == idle["metadata"]["resourceVersion"]
    assert (rows["er-newer"].new, rows["er-newer"].superseded) == (True, False)
    assert not rows["er-newer"].row.is_deleted
    assert (changes.names_reused, changes.vanished) == (1, 1)
    assert set(after.runners) == {"er-busy", "er-newer"}
    assert after.live_names[(idle["metadata"]["namespace"], idle["metadata"]["name"])] == "er-newer"


def test_an_older_runner_seen_after_the_holder_of_its_name_is_recorded_gone(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    idle = cluster["idle"]
    older = taking_the_name_of(
        idle, cluster, uid="er-older", rv="5", created="2026-11-28T08:00:00Z"
    )
    changes, after = diff(state, runner_events(T1, changed=[older]), T1)
    [write] = changes.runners
    assert (write.row.uid, write.new, write.superseded, write.row.is_deleted) == (
        "er-older",
        True,
        True,
        True,
    )
    assert (changes.names_reused, changes.vanished) == (1, 1)
    assert set(after.runners) == {"er-idle", "er-busy"}


def test_runners_whose_creation_times_do_not_tell_leave_the_name_to_its_holder(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    idle = cluster["idle"]
    same_time = arc.ephemeral_runner(
        cluster["ers"],
        name=idle["metadata"]["name"],
        uid="er-same-time",
        rv="81",
        created=idle["metadata"]["creationTimestamp"],
    )
    changes, after = diff(state, runner_events(T1, changed=[same_time]), T1)
    rows = {w.row.uid: w.row for w in changes.runners}
    assert rows["er-idle"].is_deleted
    assert not rows["er-same-time"].is_deleted
    assert "er-same-time" in after.runners


def test_counts_split_per_pool_keep_each_pools_rows_and_state(cluster: dict[str, Any]) -> None:
    first = loaded(cluster).runner_sets["ars-1"]
    second = replace(first, uid="ars-2", name="arc-linux-arm64")
    moved, same = RunnerCounts(current=3, busy=1), RunnerCounts(current=1)
    changes = ChangeSet(
        now=T1,
        runner_sets=(RowWrite(first, new=False),),
        history=(counts.history_row(first, now=T1), counts.history_row(second, now=T1)),
        delta=StateDelta(
            runner_sets=MapDelta(put={"ars-1": first}),
            written={"ars-1": moved},
            histories={"ars-1": moved, "ars-2": same},
            history_at={"ars-1": T1, "ars-2": T1},
        ),
    )
    third = replace(first, uid="ars-3", name="arc-linux-gpu")
    changes = replace(
        changes,
        runner_sets=(*changes.runner_sets, RowWrite(third, new=False)),
        delta=replace(
            changes.delta,
            runner_sets=MapDelta(put={"ars-1": first, "ars-3": third}),
            written={"ars-1": moved, "ars-3": same},
            history_at={"ars-1": T1, "ars-2": T1, "ars-3": T1},
        ),
    )
    one, three, two = counts.by_pool(changes)
    # a pool with its row only: no history row, nothing marked as in the history
    assert three == ChangeSet(
        now=T1,
        runner_sets=(RowWrite(third, new=False),),
        delta=StateDelta(
            runner_sets=MapDelta(put={"ars-3": third}),
            written={"ars-3": same},
            history_at={"ars-3": T1},
        ),
    )
    assert one == ChangeSet(
        now=T1,
        runner_sets=(RowWrite(first, new=False),),
        history=(counts.history_row(first, now=T1),),
        delta=StateDelta(
            runner_sets=MapDelta(put={"ars-1": first}),
            written={"ars-1": moved},
            histories={"ars-1": moved},
            history_at={"ars-1": T1},
        ),
    )
    # a pool with a history row only: no pool row, nothing marked written
    assert two == ChangeSet(
        now=T1,
        history=(counts.history_row(second, now=T1),),
        delta=StateDelta(histories={"ars-2": same}, history_at={"ars-2": T1}),
    )


def test_a_batch_view_shows_its_puts_over_the_base_and_hides_removals() -> None:
    view = Layered({"a": 1, "b": 2, "c": 3}, {"b": 20, "d": 4}, frozenset({"c"}))
    assert dict(view) == {"a": 1, "b": 20, "d": 4}
    assert len(view) == 3
    assert "c" not in view


def test_the_summary_counts_each_kind_of_write_under_its_own_name(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    gone, _ = diff(state, listed(state, cluster, at=T2), T2)
    pool, runner = state.runner_sets["ars-1"], state.runners["er-idle"]
    changes = ChangeSet(
        now=T2,
        runner_sets=(RowWrite(pool, new=True), *[RowWrite(pool, new=False)] * 2),
        runners=(*[RowWrite(runner, new=True)] * 3, *[RowWrite(runner, new=False)] * 4),
        runs=gone.runs * 9,
        history=(counts.history_row(pool, now=T2),) * 10,
        completed=5,
        deleted=6,
        vanished=7,
        names_reused=8,
    )
    assert changes.summary() == {
        "runner_sets_inserted": 1,
        "runner_sets_updated": 2,
        "runners_inserted": 3,
        "runners_updated": 4,
        "runners_completed": 5,
        "runners_deleted": 6,
        "runners_vanished": 7,
        "runner_names_reused": 8,
        "runs_derived": 9,
        "history_rows": 10,
    }


def test_a_pool_row_carries_every_field_of_its_runner_set() -> None:
    record = parse.parse_runner_set(arc.runner_set(uid="ars-1", rv="10")).record
    counts = RunnerCounts(current=1, pending=2, running=3, failed=4, busy=5, desired=6)
    row = mapping.runner_set_row(record, counts=counts, cluster_name="prod", now=T1)
    assert row == RunnerSetRow(
        uid="ars-1",
        cluster_name="prod",
        namespace="arc-runners",
        name="arc-linux-x64",
        resource_version="10",
        github_config_url="https://github.com/acme-corp",
        github_config_secret="arc-linux-x64-gha-rs-github-secret",
        runner_group="ci-linux",
        github_owner="acme-corp",
        github_repo="",
        github_enterprise="",
        github_host="github.com",
        min_runners=1,
        max_runners=20,
        runner_scale_set_id=7,
        runner_scale_set_name="arc-linux-x64",
        phase="Running",
        status="active",
        deleted_at=None,
        current_runners=1,
        desired_runners=6,
        pending_runners=2,
        running_runners=3,
        failed_runners=4,
        busy_runners=5,
        last_sync_at=T1,
    )
    deleting = arc.runner_set(uid="ars-1", rv="11", deletionTimestamp="2026-11-28T10:00:05Z")
    gone = mapping.runner_set_row(
        parse.parse_runner_set(deleting).record, counts=counts, cluster_name="prod", now=T1
    )
    assert (gone.status, gone.deleted_at) == ("deleted", T0 + timedelta(seconds=5))


def test_a_runner_changing_after_its_pool_is_gone_still_belongs_to_it(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    changed = arc.bumped(cluster["idle"], "30", status={"phase": "Pending"})
    inputs = full_list(
        state, T1, ephemeral_runner_sets=[cluster["ers"]], runners=[changed, cluster["busy"]]
    )
    changes, _ = diff(state, inputs, T1)
    assert [(w.row.uid, w.row.status) for w in changes.runner_sets] == [("ars-1", "deleted")]
    [write] = changes.runners
    row = write.row
    assert (row.uid, row.phase, write.new) == ("er-idle", "Pending", False)
    assert (row.runner_set_uid, row.runner_set_namespace, row.runner_set_name) == (
        "ars-1",
        "arc-runners",
        "arc-linux-x64",
    )


def test_an_ephemeral_runner_set_is_replaced_by_newer_observations_only(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    ers = cluster["ers"]
    newer = arc.bumped(ers, "40", spec={"replicas": 5})
    _, after = diff(state, [observed(EPHEMERAL_RUNNER_SETS, newer, T1)], T1)
    assert after.ephemeral_runner_sets["ers-1"].replicas == 5
    assert counts.live_counts(after)["ars-1"].desired == 5
    older = arc.bumped(ers, "30", spec={"replicas": 9})
    _, later = diff(after, [observed(EPHEMERAL_RUNNER_SETS, older, T2)], T2)
    assert later.ephemeral_runner_sets["ers-1"].replicas == 5


def test_an_ephemeral_runner_set_deleted_or_missing_from_a_list_is_gone(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    deleted = arc.bumped(cluster["ers"], "40")
    _, after = diff(state, [observed(EPHEMERAL_RUNNER_SETS, deleted, T1, deleted=True)], T1)
    assert after.ephemeral_runner_sets == {}
    assert counts.live_counts(after)["ars-1"].desired == 0
    inputs = full_list(state, T1, runner_sets=[cluster["ars"]], runners=[cluster["idle"]])
    _, listed_after = diff(state, inputs, T1)
    assert listed_after.ephemeral_runner_sets == {}
    # an observation older than the deletion does not bring it back
    stale = arc.bumped(cluster["ers"], "30")
    _, still_gone = diff(after, [observed(EPHEMERAL_RUNNER_SETS, stale, T2)], T2)
    assert still_gone.ephemeral_runner_sets == {}


def test_counts_due_are_those_of_each_pool_that_moved_since_written(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    pool = state.runner_sets["ars-1"]
    live = counts.live_counts(state)["ars-1"]
    quiet = replace(pool, uid="ars-0", name="arc-quiet")
    waiting = replace(pool, uid="ars-9", name="arc-waiting")
    state.runner_sets = {"ars-0": quiet, "ars-9": waiting, "ars-1": pool}
    # ars-0 has nothing new; ars-9 moved within the period; ars-1's history row is
    # current but its pool row is not
    state.written = {
        "ars-0": RunnerCounts(),
        "ars-9": RunnerCounts(current=7),
        "ars-1": RunnerCounts(),
    }
    state.histories = {"ars-0": RunnerCounts(), "ars-9": RunnerCounts(current=7), "ars-1": live}
    state.history_at = {"ars-9": T1}
    due = counts.counts_due(state, now=T2, period=timedelta(seconds=60))
    assert [(w.row.uid, w.new) for w in due.runner_sets] == [("ars-1", False)]
    row = due.runner_sets[0].row
    assert (row.last_sync_at, row.current_runners, row.busy_runners) == (T2, 2, 1)
    assert due.history == ()
    assert due.delta.written == {"ars-1": live}
    assert due.delta.histories == {}
    assert due.delta.history_at == {"ars-1": T2}


def test_a_runner_without_a_creation_time_takes_the_name_from_its_holder(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    idle = cluster["idle"]
    undated = arc.ephemeral_runner(
        cluster["ers"], name=idle["metadata"]["name"], uid="er-undated", rv="82"
    )
    del undated["metadata"]["creationTimestamp"]
    changes, after = diff(state, runner_events(T1, changed=[undated]), T1)
    rows = {w.row.uid: w.row for w in changes.runners}
    assert rows["er-idle"].is_deleted
    assert not rows["er-undated"].is_deleted
    assert "er-undated" in after.runners


def test_a_name_freed_by_a_deletion_in_the_batch_is_taken_without_ending_anyone(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    idle = cluster["idle"]
    newer = taking_the_name_of(
        idle, cluster, uid="er-newer", rv="80", created="2026-11-28T09:30:00Z"
    )
    inputs = [
        *runner_events(T1, deleted=[arc.bumped(idle, "79")]),
        *runner_events(T1, changed=[newer]),
    ]
    changes, after = diff(state, inputs, T1)
    rows = {w.row.uid: w.row for w in changes.runners}
    assert (rows["er-idle"].is_deleted, rows["er-idle"].completion_source) == (True, None)
    assert not rows["er-newer"].is_deleted
    assert (changes.names_reused, changes.vanished, changes.deleted) == (0, 0, 1)
    assert set(after.runners) == {"er-busy", "er-newer"}


def test_a_deleted_pool_event_deletes_it_at_receipt_for_good(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    gone = arc.bumped(cluster["ars"], "50")
    changes, after = diff(state, [observed(RUNNER_SETS, gone, T1, deleted=True)], T1)
    [pool] = [w.row for w in changes.runner_sets]
    assert (pool.status, pool.deleted_at, pool.resource_version) == ("deleted", T1, "50")
    assert (pool.current_runners, pool.busy_runners) == (2, 1)  # the counts it had
    assert after.runner_sets == {}
    # a later observation of the same pool does not bring it back
    late = arc.bumped(cluster["ars"], "60")
    again, _ = diff(after, [observed(RUNNER_SETS, late, T2)], T2)
    assert [(w.row.status, w.row.deleted_at) for w in again.runner_sets] in ([], [("deleted", T1)])


def test_a_pool_missing_from_a_list_is_deleted_at_the_lists_version(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    changes, _ = diff(state, full_list(state, T1, rv="777"), T1)
    [pool] = [w.row for w in changes.runner_sets]
    assert (pool.status, pool.deleted_at, pool.resource_version) == ("deleted", T1, "777")


def test_a_newer_pool_observation_keeps_the_counts_of_its_row(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    before = state.runner_sets["ars-1"]
    newer = arc.bumped(cluster["ars"], "50", spec={"maxRunners": 40})
    changes, after = diff(state, [observed(RUNNER_SETS, newer, T1)], T1)
    [pool] = [w.row for w in changes.runner_sets]
    assert (pool.max_runners, pool.resource_version, pool.status) == (40, "50", "active")
    assert pool.counts == before.counts
    assert after.runner_sets["ars-1"] == pool
    # an older observation changes nothing
    older = arc.bumped(cluster["ars"], "20", spec={"maxRunners": 3})
    stale, _ = diff(after, [observed(RUNNER_SETS, older, T2)], T2)
    assert stale.runner_sets == ()


def test_a_state_loaded_from_rows_is_the_state_that_wrote_them(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    pools, runners = state.runner_sets.values(), state.runners.values()
    again = SyncState.loaded(pools, runners)
    assert again.runner_sets == state.runner_sets
    assert again.runners == state.runners
    assert again.tallies == state.tallies
    assert again.live_names == state.live_names
    assert again.written == {"ars-1": state.runner_sets["ars-1"].counts}
    assert again.histories == again.written
    older = RunnerCounts(current=9)
    assert SyncState.loaded(pools, runners, {"ars-1": older}).histories == {"ars-1": older}


def test_a_run_row_carries_the_runners_pool_job_and_times(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    changes, _ = diff(state, listed(state, cluster, cluster["idle"], at=T2), T2)
    assert changes.runs == (
        WorkflowRunRow(
            config_id=1,
            cluster_name="prod",
            workload_uid="er-busy",
            workload_name="arc-linux-x64-7x9kq-runner-bbbbb",
            workload_namespace="arc-runners",
            runner_set_uid="ars-1",
            runner_set_name="arc-linux-x64",
            runner_set_namespace="arc-runners",
            github_run_id=15320047781,
            github_run_number=None,
            github_job_id=None,
            head_sha=None,
            head_branch="main",
            workflow_name="ci.yaml",
            workflow_ref="acme-corp/payments-api/.github/workflows/ci.yaml@refs/heads/main",
            workflow_path=".github/workflows/ci.yaml",
            job_id="85cb98eb-2919-5766-872c-cc997f618c1f",
            job_display_name="test (3.12)",
            job_repository="acme-corp/payments-api",
            job_assigned_at=T0,
            completion_source="vanished",
            workload_started_at=datetime(2026, 11, 28, 9, 0, tzinfo=UTC),
            workload_completed_at=T2,
            status="pending",
            trigger_source="realtime",
            resource_requests={"cpu": 2000, "memory": 4 * 1024**3},
        ),
    )


def test_a_history_row_is_the_pools_counts_at_that_time(cluster: dict[str, Any]) -> None:
    pool = replace(
        loaded(cluster).runner_sets["ars-1"],
        current_runners=1,
        pending_runners=2,
        running_runners=3,
        failed_runners=4,
        busy_runners=5,
        desired_runners=6,
    )
    assert counts.history_row(pool, now=T1) == RunnerSetHistoryRow(
        runner_set_uid="ars-1",
        cluster_name="prod",
        observed_at=T1,
        current_runners=1,
        pending_runners=2,
        running_runners=3,
        failed_runners=4,
        busy_runners=5,
        desired_runners=6,
    )


def test_tallies_add_and_negate_each_count() -> None:
    one, other = Tally(1, 2, 3, 4, 5), Tally(10, 20, 30, 40, 50)
    assert one + other == Tally(11, 22, 33, 44, 55)
    assert -one == Tally(-1, -2, -3, -4, -5)
    assert one + other + -other == one
