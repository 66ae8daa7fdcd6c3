"""Rows as the diff makes them, for tests that drive the store directly."""

from datetime import datetime

from snapshotter.diff.rows import RunnerStateRow


def runner_row(
    uid: str, name: str, now: datetime, namespace: str = "arc-runners"
) -> RunnerStateRow:
    """A busy runner's row as the diff would make it."""
    return RunnerStateRow(
        uid=uid,
        cluster_name="",
        namespace=namespace,
        name=name,
        runner_set_uid=None,
        runner_set_name=None,
        runner_set_namespace=None,
        phase="Running",
        ready=True,
        reason=None,
        message=None,
        runner_id=7,
        runner_name=name,
        job_id="job-1",
        job_request_id=None,
        job_repository="acme-corp/models",
        job_workflow_ref=None,
        job_workflow_run_id=None,
        job_display_name=None,
        github_run_id=None,
        github_run_number=None,
        github_job_id=None,
        head_sha=None,
        head_branch=None,
        workflow_name=None,
        pod_failures=0,
        creation_timestamp=now,
        deletion_timestamp=None,
        job_assigned_at=now,
        completed_at=None,
        completion_source=None,
        is_completed=False,
        is_deleted=False,
        resource_version="100",
        first_seen_at=now,
        last_seen_at=now,
    )
