"""Typed, immutable views of the three ARC resources the snapshotter reads.

Only the fields the tables need are kept. Every field an ARC version may omit is
optional here; `has_job` encodes ARC's own "busy" test across versions.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from snapshotter.model.github_url import GitHubScope
from snapshotter.model.pod_resources import PodResources

# The resources' plural names, which also name them in the state, queue and cursors.
RUNNER_SETS = "autoscalingrunnersets"
EPHEMERAL_RUNNER_SETS = "ephemeralrunnersets"
RUNNERS = "ephemeralrunners"


class SetKey(NamedTuple):
    """An AutoscalingRunnerSet by namespace and name (stable across re-creation)."""

    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Identity:
    """What every object has; enough to tell whether it changed since last time."""

    uid: str
    namespace: str
    name: str
    resource_version: str


@dataclass(frozen=True, slots=True)
class KubeObject:
    """What every record has: who it is and when it was created or deleted."""

    identity: Identity
    creation_timestamp: datetime | None
    deletion_timestamp: datetime | None

    @property
    def namespace(self) -> str:
        return self.identity.namespace

    @property
    def resource_version(self) -> str:
        return self.identity.resource_version


@dataclass(frozen=True, slots=True)
class RunnerSetRecord(KubeObject):
    """An AutoscalingRunnerSet (a pool of runners)."""

    github_config_url: str | None
    github_config_secret: str | None
    runner_group: str | None
    min_runners: int
    max_runners: int
    scope: GitHubScope | None
    runner_scale_set_id: int | None
    runner_scale_set_name: str | None
    phase: str | None

    @property
    def key(self) -> SetKey:
        return SetKey(self.identity.namespace, self.identity.name)


@dataclass(frozen=True, slots=True)
class EphemeralRunnerSetRecord(KubeObject):
    """An EphemeralRunnerSet: the middle object whose `spec.replicas` is the desired count."""

    replicas: int
    owner_uid: str | None
    scale_set: SetKey | None


@dataclass(frozen=True, slots=True)
class RunAnnotations:
    """Optional job metadata that some installations add as annotations."""

    run_id: int | None = None
    job_id: int | None = None
    run_number: int | None = None
    sha: str | None = None
    workflow: str | None = None
    branch: str | None = None


@dataclass(frozen=True, slots=True)
class EphemeralRunnerRecord(KubeObject):
    """An EphemeralRunner: one runner, and the job it ran if the listener said so."""

    scale_set: SetKey | None
    owner_set_uid: str | None
    spec_runner_set_name: str | None
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
    workflow_run_id: int | None
    job_display_name: str | None
    pod_failures: int
    annotations: RunAnnotations
    finalizers: tuple[str, ...] | None = None  # None: not set yet (ARC sets them at creation)
    # The pod template's requests and limits (SPEC §3.6); None: no template given
    resources: PodResources | None = None

    @property
    def has_job(self) -> bool:
        # ARC 0.13+: `len(status.jobId) > 0`; older controllers have no jobId, but the
        # listener wrote jobRequestId/workflowRunId in the same JobStarted patch.
        return bool(self.job_id) or bool(self.job_request_id) or bool(self.workflow_run_id)
