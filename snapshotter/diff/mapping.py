"""Records -> rows (SPEC §3.1, §3.2), and finding the pool a runner belongs to.

The functions here map what an object says now; which of those values a row takes
(newer state, facts that are already final) is decided by the fold in `runners`
and `runner_sets`.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from snapshotter.diff.rows import RunnerCounts, RunnerSetRow, RunnerStateRow
from snapshotter.model.records import (
    EphemeralRunnerRecord,
    EphemeralRunnerSetRecord,
    RunnerSetRecord,
    SetKey,
)

K = TypeVar("K")
V = TypeVar("V")


class Layered(Mapping[K, V]):
    """A read-only view of `base` with a batch's own puts and removals on top."""

    def __init__(
        self, base: Mapping[K, V], put: Mapping[K, V], gone: frozenset[K] = frozenset()
    ) -> None:
        self.base, self.put, self.removed = base, put, gone

    def __getitem__(self, key: K) -> V:
        if key in self.put:
            return self.put[key]
        if key in self.removed:
            raise KeyError(key)
        return self.base[key]

    def __iter__(self) -> Iterator[K]:
        yield from self.put
        yield from (k for k in self.base if k not in self.put and k not in self.removed)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def runner_set_row(
    record: RunnerSetRecord, *, counts: RunnerCounts, cluster_name: str, now: datetime
) -> RunnerSetRow:
    """The row for an AutoscalingRunnerSet as it is now."""
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
        last_sync_at=now,
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


@dataclass(frozen=True, slots=True)
class RunnerSetIndex:
    """Finds the AutoscalingRunnerSet a runner belongs to (SPEC §1)."""

    runner_sets: Mapping[str, RunnerSetRow]  # active pools
    ephemeral_runner_sets: Mapping[str, EphemeralRunnerSetRecord]
    active_by_key: Mapping[SetKey, str]

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
    index: RunnerSetIndex,
    cluster_name: str,
    at: datetime,
) -> RunnerStateRow:
    """The row for an EphemeralRunner as it is now, as if seen for the first time;
    facts, completion and deletion are settled by the fold afterwards."""
    set_uid, set_key = index.resolve(record)
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
        job_id=None,
        job_request_id=None,
        job_repository=None,
        job_workflow_ref=None,
        job_workflow_run_id=None,
        job_display_name=None,
        github_run_id=None,
        github_run_number=None,
        github_job_id=None,
        head_sha=None,
        head_branch=None,
        workflow_name=None,
        pod_failures=record.pod_failures,
        creation_timestamp=record.creation_timestamp,
        deletion_timestamp=record.deletion_timestamp,
        job_assigned_at=None,
        completed_at=None,
        completion_source=None,
        is_completed=False,
        is_deleted=False,
        resource_version=record.identity.resource_version,
        first_seen_at=at,
        last_seen_at=at,
        resource_requests=record.resources.requests if record.resources else None,
        resource_limits=record.resources.limits if record.resources else None,
    )
