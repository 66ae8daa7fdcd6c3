"""Row shapes of the tables, as the diff produces and compares them.

Field names are the column names. The database package maps them 1:1, except that
`runner_set_uid` becomes the `runner_set_id` of the runner set row with that uid.
"""

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Literal

RunnerSetStatus = Literal["active", "deleted"]
CompletionSource = Literal["phase", "deleted", "vanished"]


@dataclass(frozen=True, slots=True)
class RunnerCounts:
    current: int = 0
    pending: int = 0
    running: int = 0
    failed: int = 0
    busy: int = 0
    desired: int = 0


@dataclass(frozen=True, slots=True)
class Tally:
    """What live runners add to their pool's counts (desired comes from elsewhere)."""

    current: int = 0
    pending: int = 0
    running: int = 0
    failed: int = 0
    busy: int = 0

    def __add__(self, other: "Tally") -> "Tally":
        return Tally(
            self.current + other.current,
            self.pending + other.pending,
            self.running + other.running,
            self.failed + other.failed,
            self.busy + other.busy,
        )

    def __neg__(self) -> "Tally":
        return Tally(-self.current, -self.pending, -self.running, -self.failed, -self.busy)

    def counts(self, desired: int) -> RunnerCounts:
        return RunnerCounts(
            self.current, self.pending, self.running, self.failed, self.busy, desired
        )


@dataclass(frozen=True, slots=True)
class RunnerSetRow:
    """`github_runner_sets`: one AutoscalingRunnerSet incarnation (keyed by uid)."""

    uid: str
    cluster_name: str
    namespace: str
    name: str
    resource_version: str
    github_config_url: str | None
    github_config_secret: str | None
    runner_group: str | None
    github_owner: str | None
    github_repo: str | None
    github_enterprise: str | None
    github_host: str | None
    min_runners: int
    max_runners: int
    runner_scale_set_id: int | None
    runner_scale_set_name: str | None
    phase: str | None
    status: RunnerSetStatus
    deleted_at: datetime | None
    current_runners: int
    desired_runners: int
    pending_runners: int
    running_runners: int
    failed_runners: int
    busy_runners: int
    last_sync_at: datetime | None

    @property
    def counts(self) -> RunnerCounts:
        return RunnerCounts(
            current=self.current_runners,
            pending=self.pending_runners,
            running=self.running_runners,
            failed=self.failed_runners,
            busy=self.busy_runners,
            desired=self.desired_runners,
        )


@dataclass(frozen=True, slots=True)
class RunnerStateRow:
    """`github_ephemeral_runner_states`: a runner's last known state (keyed by uid)."""

    uid: str
    cluster_name: str
    namespace: str
    name: str
    runner_set_uid: str | None
    runner_set_name: str | None
    runner_set_namespace: str | None
    phase: str | None
    ready: bool | None
    reason: str | None
    message: str | None
    runner_id: int | None
    runner_name: str | None
    job_id: str | None
    job_request_id: int | None
    job_repository: str | None
    job_workflow_ref: str | None
    job_workflow_run_id: int | None
    job_display_name: str | None
    # What a run row needs beyond the job fields (annotations, else derived from the
    # workflow ref), kept so that a runner recorded as vanished still gets them.
    github_run_id: int | None
    github_run_number: int | None
    github_job_id: int | None
    head_sha: str | None
    head_branch: str | None
    workflow_name: str | None
    pod_failures: int
    creation_timestamp: datetime | None
    deletion_timestamp: datetime | None
    job_assigned_at: datetime | None
    completed_at: datetime | None
    completion_source: CompletionSource | None
    is_completed: bool
    is_deleted: bool
    resource_version: str
    first_seen_at: datetime
    last_seen_at: datetime
    # The pod template's summed requests and limits (SPEC §3.6): cpu in millicores,
    # memory in bytes, other resources by their Kubernetes name; None: unknown.
    resource_requests: Mapping[str, int] | None = None
    resource_limits: Mapping[str, int] | None = None

    @property
    def has_job(self) -> bool:
        return bool(self.job_id) or bool(self.job_request_id) or bool(self.job_workflow_run_id)

    @property
    def is_live(self) -> bool:
        """Exists and is not being deleted: counts toward the pool's current runners."""
        return not self.is_deleted and self.deletion_timestamp is None


@dataclass(frozen=True, slots=True)
class WorkflowRunRow:
    """`github_workflow_runs`: one finished runner for one matching config."""

    config_id: int
    cluster_name: str
    workload_uid: str
    workload_name: str
    workload_namespace: str
    runner_set_uid: str | None
    runner_set_name: str | None
    runner_set_namespace: str | None
    github_run_id: int | None
    github_run_number: int | None
    github_job_id: int | None
    head_sha: str | None
    head_branch: str | None
    workflow_name: str | None
    workflow_ref: str | None
    workflow_path: str | None
    job_id: str | None
    job_display_name: str | None
    job_repository: str | None
    job_assigned_at: datetime | None
    completion_source: CompletionSource
    workload_started_at: datetime | None
    workload_completed_at: datetime | None
    status: str
    trigger_source: str
    resource_requests: Mapping[str, int] | None = None  # the runner's, when the job ran


@dataclass(frozen=True, slots=True)
class RunnerSetHistoryRow:
    """`github_runner_set_history`: the counts of a runner set when they changed."""

    runner_set_uid: str
    cluster_name: str
    observed_at: datetime
    current_runners: int
    pending_runners: int
    running_runners: int
    failed_runners: int
    busy_runners: int
    desired_runners: int


def column_names(row_type: type) -> tuple[str, ...]:
    """The dataclass fields of a row type, which are its column names."""
    return tuple(f.name for f in fields(row_type))
