"""The diff and the completion rule, with `now` passed in (a frozen clock).

Each test starts from a persisted state, applies one observation and checks the
exact rows the ChangeSet would write.
"""

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from snapshotter.diff.state import PersistedState
from tests.support import arc_objects as arc
from tests.support.observing import full_list, runner_events
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


def test_first_list_inserts_everything(cluster: dict[str, Any]) -> None:
    changes, state = diff(
        PersistedState(), listed(PersistedState(), cluster, cluster["idle"], cluster["busy"]), T0
    )
    assert [r.uid for r in changes.runner_sets.inserts] == ["ars-1"]
    pool = changes.runner_sets.inserts[0]
    assert (pool.current_runners, pool.running_runners, pool.busy_runners) == (2, 2, 1)
    assert (pool.pending_runners, pool.failed_runners, pool.desired_runners) == (0, 0, 2)
    assert (pool.status, pool.cluster_name, pool.github_owner) == ("active", "prod", "acme-corp")
    assert pool.last_sync_at == T0
    runners = {r.uid: r for r in changes.runners.inserts}
    assert set(runners) == {"er-idle", "er-busy"}
    assert runners["er-busy"].job_assigned_at == T0
    assert runners["er-idle"].job_assigned_at is None
    assert runners["er-busy"].runner_set_uid == "ars-1"
    assert (runners["er-busy"].first_seen_at, runners["er-busy"].last_seen_at) == (T0, T0)
    assert not any(r.is_completed for r in runners.values())
    assert changes.runs == ()
    assert len(changes.history) == 1
    assert changes.history[0].busy_runners == 1
    assert set(state.runners) == {"er-idle", "er-busy"}
    assert set(state.ephemeral_runner_sets) == {"ers-1"}


def test_nothing_changed_gives_an_empty_change_set(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    changes, after = diff(state, listed(state, cluster, cluster["idle"], cluster["busy"]), T1)
    assert not changes.writes_rows
    assert changes.summary() == dict.fromkeys(changes.summary(), 0)
    assert after == state


def test_job_fields_arriving_update_the_runner_and_the_busy_count(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    got_job = arc.with_job(arc.bumped(cluster["idle"], "20"), jobId="job-2", workflowRunId=99)
    changes, _ = diff(state, listed(state, cluster, got_job, cluster["busy"]), T1)
    assert changes.runners.inserts == ()
    [update] = changes.runners.updates
    assert update.uid == "er-idle"
    assert update.values["job_id"] == "job-2"
    assert update.values["workflow_run_id"] == 99
    assert update.values["job_assigned_at"] == T1
    assert update.values["resource_version"] == "20"
    assert update.values["last_seen_at"] == T1
    assert "first_seen_at" not in update.values
    assert "phase" not in update.values  # unchanged columns are not written
    [pool] = changes.runner_sets.updates
    assert pool.values == {"busy_runners": 2, "resource_version": "10", "last_sync_at": T1}
    assert [h.busy_runners for h in changes.history] == [2]
    assert changes.runs == ()


def test_job_assigned_at_never_moves(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    later = arc.bumped(cluster["busy"], "30", status={"ready": False})
    changes, after = diff(state, listed(state, cluster, cluster["idle"], later), T2)
    [update] = changes.runners.updates
    assert "job_assigned_at" not in update.values
    assert after.runners["er-busy"].job_assigned_at == T0


def test_deletion_timestamp_on_a_busy_runner_completes_it(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    deleting = arc.bumped(
        cluster["busy"], "40", metadata={"deletionTimestamp": "2026-11-28T10:00:07Z"}
    )
    changes, after = diff(state, listed(state, cluster, cluster["idle"], deleting), T1)
    [update] = changes.runners.updates
    assert update.values["is_completed"] is True
    assert update.values["completion_source"] == "deleted"
    assert update.values["completed_at"] == datetime(2026, 11, 28, 10, 0, 7, tzinfo=UTC)
    assert "is_deleted" not in update.values  # still exists, being deleted
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
    # the pool no longer counts it: it is being deleted
    assert changes.runner_sets.updates[0].values["current_runners"] == 1
    # the DELETED event that follows records the deletion and nothing else
    gone = arc.bumped(deleting, "41", metadata={"finalizers": []})
    changes2, after2 = diff(after, runner_events(deleted=[gone]), T2)
    assert changes2.runs == ()
    assert [u.values.get("is_deleted") for u in changes2.runners.updates] == [True]
    assert "er-busy" not in after2.runners


def test_deleted_event_of_a_busy_runner_completes_it_at_observation_time(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    changes, after = diff(state, runner_events(deleted=[arc.bumped(cluster["busy"], "50")]), T1)
    [update] = changes.runners.updates
    assert update.values["completion_source"] == "deleted"
    assert update.values["completed_at"] == T1
    assert update.values["is_deleted"] is True
    assert [r.config_id for r in changes.runs] == [CI_CONFIG.id]
    assert "er-busy" not in after.runners


def test_runner_absent_from_a_full_list_vanished(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    changes, after = diff(state, listed(state, cluster), T2)
    updates = {u.uid: u.values for u in changes.runners.updates}
    assert updates["er-busy"]["completion_source"] == "vanished"
    assert updates["er-busy"]["completed_at"] == T2
    assert updates["er-busy"]["is_deleted"] is True
    # the idle one never had a job: deleted, not completed, no run
    assert updates["er-idle"]["is_deleted"] is True
    assert "is_completed" not in updates["er-idle"]
    assert [(r.workload_uid, r.completion_source) for r in changes.runs] == [
        ("er-busy", "vanished")
    ]
    assert (changes.vanished, changes.completed, changes.deleted) == (2, 1, 2)
    assert after.runners == {}


def test_idle_runner_created_and_deleted_produces_no_run(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    churn = arc.ephemeral_runner(
        cluster["ers"], name="arc-linux-x64-7x9kq-runner-ccccc", uid="er-churn", rv="60", status={}
    )
    changes, after = diff(state, runner_events(changed=[churn]), T1)
    assert [r.uid for r in changes.runners.inserts] == ["er-churn"]
    changes, after = diff(after, runner_events(deleted=[arc.bumped(churn, "61")]), T2)
    assert changes.runs == ()
    assert changes.completed == 0
    [update] = changes.runners.updates
    assert update.values["is_deleted"] is True


def test_runner_born_and_gone_within_one_batch_is_recorded(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    quick = arc.with_job(
        arc.ephemeral_runner(
            cluster["ers"], name="arc-linux-x64-7x9kq-runner-ddddd", uid="er-quick", rv="70"
        )
    )
    changes, after = diff(state, runner_events(deleted=[quick]), T1)
    [row] = changes.runners.inserts
    assert (row.is_deleted, row.is_completed, row.completion_source) == (True, True, "deleted")
    assert [r.workload_uid for r in changes.runs] == ["er-quick"]
    assert "er-quick" not in after.runners


def test_succeeded_phase_completes_once_even_without_job_fields(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    # ARC <= 0.12: exit 0 after its job -> Succeeded; here the listener's job fields were lost
    succeeded = arc.bumped(cluster["idle"], "80", status={"phase": "Succeeded"})
    changes, after = diff(state, listed(state, cluster, succeeded, cluster["busy"]), T1)
    [update] = changes.runners.updates
    assert (update.values["completion_source"], update.values["completed_at"]) == ("phase", T1)
    # workflow unknown: every in-scope config matches; the other cluster's does not
    assert sorted(r.config_id for r in changes.runs) == [CI_CONFIG.id, DEPLOY_CONFIG.id]
    changes, _ = diff(after, runner_events(deleted=[arc.bumped(succeeded, "81")]), T2)
    assert changes.runs == ()
    assert changes.completed == 0


def test_failed_runner_without_a_job_completes_without_a_run(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    failed = arc.bumped(
        cluster["idle"], "90", status={"phase": "Failed", "reason": "InvalidPod", "ready": False}
    )
    changes, _ = diff(state, listed(state, cluster, failed, cluster["busy"]), T1)
    [update] = changes.runners.updates
    assert update.values["is_completed"] is True
    assert update.values["completion_source"] == "phase"
    assert update.values["reason"] == "InvalidPod"
    assert changes.runs == ()
    pool = changes.runner_sets.updates[0].values
    assert (pool["failed_runners"], pool["running_runners"]) == (1, 1)


def test_outdated_runner_without_job_is_not_finished(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    outdated = arc.bumped(cluster["idle"], "91", status={"phase": "Outdated"})
    changes, after = diff(state, listed(state, cluster, outdated, cluster["busy"]), T1)
    assert changes.completed == 0
    changes, _ = diff(after, runner_events(deleted=[outdated]), T2)
    assert (changes.completed, changes.runs) == (0, ())


def test_only_a_changed_resource_version_writes_nothing(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    relabelled = arc.bumped(cluster["idle"], "95", metadata={"labels": {"team": "other"}})
    changes, after = diff(state, listed(state, cluster, relabelled, cluster["busy"]), T1)
    assert not changes.writes_rows
    assert after.runners["er-idle"].resource_version == "95"  # not re-mapped next time


def test_branch_and_workflow_filters_choose_configs(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    deploy = arc.bumped(
        cluster["busy"],
        "100",
        status={"jobWorkflowRef": "acme-corp/infra/.github/workflows/deploy.yaml@refs/tags/v2"},
    )
    changes, _ = diff(state, runner_events(deleted=[deploy]), T1)
    assert [(r.config_id, r.head_branch) for r in changes.runs] == [
        (DEPLOY_CONFIG.id, "refs/tags/v2")
    ]


def test_annotations_fill_run_fields(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    annotated = arc.bumped(
        cluster["busy"],
        "110",
        metadata={
            "annotations": {
                "actions.github.com/run-number": "42",
                "actions.github.com/job-id": "987",
                "actions.github.com/sha": "abc123",
                "actions.github.com/branch": "release/1.x",
                "actions.github.com/workflow": "CI",
            }
        },
    )
    changes, _ = diff(state, runner_events(deleted=[annotated]), T1)
    # workflow name "CI" still matches config "ci.yaml" through the workflow file
    [run] = changes.runs
    assert (run.github_run_number, run.github_job_id, run.head_sha) == (42, 987, "abc123")
    assert (run.head_branch, run.workflow_name) == ("release/1.x", "CI")


def test_runner_set_deletion_and_recreation(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    changes, after = diff(state, full_list(state, runners=[]), T1)
    [pool] = changes.runner_sets.updates
    assert (pool.values["status"], pool.values["deleted_at"]) == ("deleted", T1)
    assert after.runner_sets == {}
    reborn = arc.runner_set(uid="ars-2", rv="200")
    changes, after = diff(after, full_list(after, runner_sets=[reborn]), T2)
    assert [r.uid for r in changes.runner_sets.inserts] == ["ars-2"]
    assert set(after.runner_sets) == {"ars-2"}


def test_runner_set_with_deletion_timestamp_is_deleted(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    deleting = arc.bumped(
        cluster["ars"], "300", metadata={"deletionTimestamp": "2026-11-28T10:00:09Z"}
    )
    changes, after = diff(
        state,
        full_list(
            state,
            runner_sets=[deleting],
            ephemeral_runner_sets=[cluster["ers"]],
            runners=[cluster["idle"], cluster["busy"]],
        ),
        T1,
    )
    [pool] = changes.runner_sets.updates
    assert pool.values["status"] == "deleted"
    assert pool.values["deleted_at"] == datetime(2026, 11, 28, 10, 0, 9, tzinfo=UTC)
    assert changes.history == ()
    # still listed while its finalizer runs: nothing more to write
    again, _ = diff(
        after,
        full_list(
            after,
            runner_sets=[deleting],
            ephemeral_runner_sets=[cluster["ers"]],
            runners=[cluster["idle"], cluster["busy"]],
        ),
        T2,
    )
    assert not again.writes_rows


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
    changes, _ = diff(
        state,
        full_list(
            state,
            runner_sets=[cluster["ars"]],
            ephemeral_runner_sets=[cluster["ers"], newer],
            runners=[cluster["idle"], cluster["busy"]],
        ),
        T1,
    )
    assert changes.runner_sets.updates[0].values["desired_runners"] == 5


def test_runners_seen_before_their_pool_are_attached_when_it_appears(
    cluster: dict[str, Any],
) -> None:
    changes, state = diff(PersistedState(), runner_events(changed=[cluster["idle"]]), T0)
    assert changes.runners.inserts[0].runner_set_uid is None
    changes, state = diff(
        state, full_list(state, runner_sets=[cluster["ars"]], runners=[cluster["idle"]]), T1
    )
    assert [(u.uid, u.values.get("runner_set_uid")) for u in changes.runners.updates] == [
        ("er-idle", "ars-1")
    ]
    assert changes.runner_sets.inserts[0].current_runners == 1


def test_replaying_the_same_events_changes_nothing(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    event = runner_events(changed=[cluster["busy"]])
    changes, after = diff(state, event, T1)
    assert not changes.writes_rows
    assert after == state


def test_persisted_row_of_a_completed_runner_keeps_its_completion(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    done = replace(
        state.runners["er-busy"], is_completed=True, completed_at=T0, completion_source="phase"
    )
    state = replace(state, runners={**state.runners, "er-busy": done})
    changes, _ = diff(state, listed(state, cluster, cluster["idle"]), T1)
    assert changes.runs == ()
    assert changes.completed == 0
