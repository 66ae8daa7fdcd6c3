"""One runner's row folded with what a batch observed (SPEC §3.2, §3.3, §4.4): the
newest state, facts that never move backwards, the completion rule's order."""

from datetime import UTC, datetime
from typing import Any

from snapshotter.diff.changes import ChangeSet
from snapshotter.diff.observed import merged
from snapshotter.diff.rows import RunnerStateRow
from snapshotter.model.records import RUNNER_SETS, RUNNERS
from tests.support import arc_objects as arc
from tests.support.observing import observed, runner_events
from tests.support.scenario import T0, T1, T2, diff, loaded


def written(changes: ChangeSet, uid: str) -> RunnerStateRow:
    [row] = [w.row for w in changes.runners if w.row.uid == uid]
    return row


def test_runner_rows_carry_the_cluster_name(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    assert {r.cluster_name for r in state.runners.values()} == {"prod"}
    changed = arc.bumped(cluster["idle"], "20", status={"phase": "Pending"})
    changes, _ = diff(state, runner_events(T1, changed=[changed]), T1)
    assert written(changes, "er-idle").cluster_name == "prod"


def test_a_runner_deleted_without_a_deletion_timestamp_takes_the_events_receipt(
    cluster: dict[str, Any],
) -> None:
    """Its finalizers were stripped: the DELETED event is all there is."""
    state = loaded(cluster)
    changes, _ = diff(state, runner_events(T1, deleted=[arc.bumped(cluster["idle"], "50")]), T1)
    row = written(changes, "er-idle")
    assert (row.is_deleted, row.deletion_timestamp, row.last_seen_at) == (True, T1, T1)
    assert row.first_seen_at == T0


def test_a_newer_observation_without_the_job_fields_keeps_the_job(
    cluster: dict[str, Any],
) -> None:
    """Job fields are final; a template that cannot be read keeps what was read."""
    state = loaded(cluster)
    before = state.runners["er-busy"]
    assert before.resource_requests is not None
    stripped = arc.merged(
        arc.bumped(cluster["busy"], "30", status={"ready": False}),
        {"spec": {"spec": None}, "status": dict.fromkeys(arc.JOB_STATUS)},
    )
    changes, after = diff(state, runner_events(T1, changed=[stripped]), T1)
    row = written(changes, "er-busy")
    assert (row.ready, row.resource_version) == (False, "30")
    assert (row.job_id, row.job_workflow_run_id, row.github_run_id) == (
        before.job_id,
        before.job_workflow_run_id,
        before.github_run_id,
    )
    assert (row.job_assigned_at, row.first_seen_at) == (T0, T0)
    assert (row.resource_requests, row.resource_limits) == (
        before.resource_requests,
        before.resource_limits,
    )
    assert after.tallies["ars-1"].busy == 1


def test_a_job_learned_after_its_runner_finished_is_dated_back_to_the_end(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    failed = arc.bumped(cluster["idle"], "30", status={"phase": "Failed"})
    changes, state = diff(state, runner_events(T1, changed=[failed]), T1)
    assert written(changes, "er-idle").completed_at == T1
    assert changes.runs == ()  # no job: no run
    # an older observation, handed over later, shows the job it had
    with_job = arc.with_job(arc.bumped(cluster["idle"], "25"), jobId="job-late")
    changes, _ = diff(state, runner_events(T2, changed=[with_job]), T2)
    row = written(changes, "er-idle")
    assert (row.job_id, row.phase, row.completion_source) == ("job-late", "Failed", "phase")
    assert (row.completed_at, row.job_assigned_at) == (T1, T1)
    assert [r.job_assigned_at for r in changes.runs] == [T1]


def test_a_terminal_phase_and_a_deletion_received_together_complete_by_the_phase(
    cluster: dict[str, Any],
) -> None:
    """Rules that hold from the same moment are taken in the rule's order."""
    state = loaded(cluster)
    ending = arc.bumped(
        cluster["busy"],
        "30",
        status={"phase": "Failed"},
        metadata={"deletionTimestamp": "2026-11-28T10:00:05Z"},
    )
    changes, _ = diff(state, runner_events(T1, changed=[ending]), T1)
    row = written(changes, "er-busy")
    assert (row.completion_source, row.completed_at, row.job_assigned_at) == ("phase", T1, T0)


def test_a_deletion_received_before_a_terminal_phase_completes_by_the_deletion(
    cluster: dict[str, Any],
) -> None:
    """Both in one batch (coalesced in the queue): the signal received first wins."""
    state = loaded(cluster)
    deleting = arc.bumped(
        cluster["busy"], "30", metadata={"deletionTimestamp": "2026-11-28T10:00:05Z"}
    )
    failed = arc.bumped(deleting, "31", status={"phase": "Failed"})
    both = merged(observed(RUNNERS, deleting, T1), observed(RUNNERS, failed, T2))
    assert (both.terminal_at, both.deleting and both.deleting.at) == (T2, T1)
    changes, _ = diff(state, [both], T2)
    row = written(changes, "er-busy")
    assert row.completion_source == "deleted"
    assert row.completed_at == datetime(2026, 11, 28, 10, 0, 5, tzinfo=UTC)  # the API server's
    assert row.phase == "Failed"


def test_a_runner_without_a_job_takes_no_run_facts_from_annotations(
    cluster: dict[str, Any],
) -> None:
    annotated = arc.ephemeral_runner(
        cluster["ers"],
        name="annotated",
        uid="er-annotated",
        rv="110",
        annotations={"actions.github.com/run-number": "42", "actions.github.com/sha": "abc"},
    )
    changes, _ = diff(loaded(cluster), runner_events(T1, changed=[annotated]), T1)
    row = written(changes, "er-annotated")
    assert (row.github_run_number, row.head_sha, row.workflow_name) == (None, None, None)


def test_a_pool_observed_again_unchanged_keeps_its_rows_sync_time(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    again = arc.bumped(cluster["ars"], "30")
    changes, after = diff(state, [observed(RUNNER_SETS, again, T1)], T1)
    assert changes.runner_sets == ()
    assert after.runner_sets["ars-1"].last_sync_at == T0


def test_a_busy_runner_changing_after_its_pool_is_gone_keeps_its_pool_and_job(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    _, state = diff(state, [observed(RUNNER_SETS, cluster["ars"], T1, deleted=True)], T1)
    changed = arc.bumped(cluster["busy"], "30", status={"ready": False})
    changes, _ = diff(state, runner_events(T2, changed=[changed]), T2)
    row = written(changes, "er-busy")
    assert (row.ready, row.runner_set_uid, row.runner_set_name) == (False, "ars-1", "arc-linux-x64")
    stored = state.runners["er-busy"]
    assert (row.job_id, row.job_assigned_at, row.first_seen_at) == (stored.job_id, T0, T0)
