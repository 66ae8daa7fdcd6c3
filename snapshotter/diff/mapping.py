"""Records -> rows (SPEC §3.1, §3.2), given the previous row and `now`.

Values that must survive later observations (first time a job was seen, completion,
first time the object was seen) are carried over from the previous row.
"""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from snapshotter.diff.rows import RunnerCounts, RunnerSetRow, RunnerStateRow
from snapshotter.model.records import (
    EphemeralRunnerRecord,
    EphemeralRunnerSetRecord,
    RunnerSetRecord,
    SetKey,
)


def runner_set_row(
    record: RunnerSetRecord,
    *,
    previous: RunnerSetRow | None,
    cluster_name: str,
    now: datetime,
) -> RunnerSetRow:
    """The row for an AutoscalingRunnerSet; counts are carried over and set later."""
    counts = previous.counts if previous else RunnerCounts()
    deleting = record.deletion_timestamp is not None
    scope = record.scope
    return RunnerSetRow(
        uid=record.identity.uid,
        cluster_name=cluster_name,
        namespace=record.identity.namespace,
        name=record.identity.name,
        resource_version=record.identity.resource_version,
        github_config_url=record.github_config_url,
        github_config_secret=record.github_config_secret,
        runner_group=record.runner_group,
        github_owner=scope.owner if scope else None,
        github_repo=scope.repo if scope else None,
        github_enterprise=scope.enterprise if scope else None,
        github_host=scope.host if scope else None,
        min_runners=record.min_runners,
        max_runners=record.max_runners,
        runner_scale_set_id=record.runner_scale_set_id,
        runner_scale_set_name=record.runner_scale_set_name,
        phase=record.phase,
        status="deleted" if deleting else "active",
        deleted_at=record.deletion_timestamp,
        current_runners=counts.current,
        desired_runners=counts.desired,
        pending_runners=counts.pending,
        running_runners=counts.running,
        failed_runners=counts.failed,
        busy_runners=counts.busy,
        last_sync_at=previous.last_sync_at if previous else now,
    )


def with_counts(row: RunnerSetRow, counts: RunnerCounts) -> RunnerSetRow:
    return replace(
        row,
        current_runners=counts.current,
        desired_runners=counts.desired,
        pending_runners=counts.pending,
        running_runners=counts.running,
        failed_runners=counts.failed,
        busy_runners=counts.busy,
    )


def marked_deleted(row: RunnerSetRow, *, now: datetime) -> RunnerSetRow:
    return replace(row, status="deleted", deleted_at=row.deleted_at or now)


@dataclass(frozen=True, slots=True)
class RunnerSetIndex:
    """Finds the AutoscalingRunnerSet a runner belongs to (SPEC §1)."""

    runner_sets: Mapping[str, RunnerSetRow]
    ephemeral_runner_sets: Mapping[str, EphemeralRunnerSetRecord]
    active_by_key: Mapping[SetKey, str]

    @classmethod
    def build(
        cls,
        runner_sets: Mapping[str, RunnerSetRow],
        ephemeral_runner_sets: Mapping[str, EphemeralRunnerSetRecord],
    ) -> "RunnerSetIndex":
        active = {
            SetKey(row.namespace, row.name): uid
            for uid, row in runner_sets.items()
            if row.status == "active"
        }
        return cls(runner_sets, ephemeral_runner_sets, active)

    def set_of_ephemeral_set(self, ers: EphemeralRunnerSetRecord) -> str | None:
        if ers.owner_uid in self.runner_sets:
            return ers.owner_uid
        return self.active_by_key.get(ers.scale_set) if ers.scale_set else None

    def resolve(self, runner: EphemeralRunnerRecord) -> tuple[str | None, SetKey | None]:
        """(runner set uid, runner set key): owner chain first, as it names the exact
        incarnation, then the scale-set labels, then `spec.runnerSetName`."""
        ers = self.ephemeral_runner_sets.get(runner.owner_set_uid or "")
        owner_uid = self.set_of_ephemeral_set(ers) if ers else None
        if owner_uid is not None:
            row = self.runner_sets[owner_uid]
            return owner_uid, SetKey(row.namespace, row.name)
        key = runner.scale_set
        if key is None and runner.spec_runner_set_name:
            key = SetKey(runner.identity.namespace, runner.spec_runner_set_name)
        if key is None:
            return None, None
        return self.active_by_key.get(key), key


def runner_state_row(
    record: EphemeralRunnerRecord,
    *,
    previous: RunnerStateRow | None,
    index: RunnerSetIndex,
    cluster_name: str,
    now: datetime,
) -> RunnerStateRow:
    """The row for an EphemeralRunner; completion is decided afterwards."""
    set_uid, set_key = index.resolve(record)
    job_assigned_at = previous.job_assigned_at if previous else None
    if job_assigned_at is None and record.has_job:
        job_assigned_at = now
    return RunnerStateRow(
        uid=record.identity.uid,
        cluster_name=cluster_name,
        namespace=record.identity.namespace,
        name=record.identity.name,
        runner_set_uid=set_uid,
        runner_set_name=set_key.name if set_key else None,
        runner_set_namespace=set_key.namespace if set_key else None,
        phase=record.phase,
        ready=record.ready,
        reason=record.reason,
        message=record.message,
        runner_id=record.runner_id,
        runner_name=record.runner_name,
        job_id=record.job_id,
        job_request_id=record.job_request_id,
        job_repository=record.job_repository,
        job_workflow_ref=record.job_workflow_ref,
        workflow_run_id=record.workflow_run_id,
        job_display_name=record.job_display_name,
        pod_failures=record.pod_failures,
        creation_timestamp=record.creation_timestamp,
        deletion_timestamp=record.deletion_timestamp,
        job_assigned_at=job_assigned_at,
        completed_at=previous.completed_at if previous else None,
        completion_source=previous.completion_source if previous else None,
        is_completed=previous.is_completed if previous else False,
        is_deleted=False,
        resource_version=record.identity.resource_version,
        first_seen_at=previous.first_seen_at if previous else now,
        last_seen_at=now,
    )
