"""A finished runner -> one `github_workflow_runs` row per matching config (SPEC §3.4).

Job facts come from the runner's status (written by the ARC listener at JobStarted)
and, where an installation adds them, from `actions.github.com/*` annotations. They
are resolved once into the runner's state row (`run_facts`), so that a run derived
later, e.g. for a runner found vanished after a restart, has the same values.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from snapshotter.diff.matching import CompiledConfig, RunFacts, matching_configs
from snapshotter.diff.rows import RunnerStateRow, WorkflowRunRow
from snapshotter.model.records import RunAnnotations
from snapshotter.model.workflow_ref import WorkflowRef, parse_workflow_ref

_NO_REF = WorkflowRef(path=None, file=None, ref=None)


@dataclass(frozen=True, slots=True)
class ResolvedRunFacts:
    """The run columns that are not plain job fields, as the state row keeps them."""

    github_run_id: int | None
    github_run_number: int | None
    github_job_id: int | None
    head_sha: str | None
    head_branch: str | None
    workflow_name: str | None


def _workflow_ref(ref: str | None) -> WorkflowRef:
    return parse_workflow_ref(ref) if ref else _NO_REF


def run_facts(row: RunnerStateRow, annotations: RunAnnotations) -> ResolvedRunFacts:
    """Annotations first, else what the job fields say (SPEC §3.4)."""
    ref = _workflow_ref(row.job_workflow_ref)
    return ResolvedRunFacts(
        github_run_id=row.job_workflow_run_id or annotations.run_id,
        github_run_number=annotations.run_number,
        github_job_id=annotations.job_id,
        head_sha=annotations.sha,
        head_branch=annotations.branch or ref.branch,
        workflow_name=annotations.workflow or ref.file,
    )


def _match_facts(row: RunnerStateRow, ref: WorkflowRef) -> RunFacts:
    names = (row.workflow_name, ref.file, ref.path, row.job_display_name)
    return RunFacts(
        runner_set_namespace=row.runner_set_namespace,
        runner_set_name=row.runner_set_name,
        workflow_names=tuple(n for n in names if n),
        workflow_known=bool(row.workflow_name or ref.path),
        branch=row.head_branch,
    )


def run_rows(
    row: RunnerStateRow,
    configs: Iterable[CompiledConfig],
    *,
    cluster_name: str,
    trigger_source: str = "realtime",
) -> list[WorkflowRunRow]:
    """Rows for a runner that just finished; empty when no enabled config matches."""
    if row.completion_source is None:
        raise ValueError(f"runner {row.uid} is not finished")
    ref = _workflow_ref(row.job_workflow_ref)
    return [
        WorkflowRunRow(
            config_id=config.id,
            cluster_name=cluster_name,
            workload_uid=row.uid,
            workload_name=row.name,
            workload_namespace=row.namespace,
            runner_set_uid=row.runner_set_uid,
            runner_set_name=row.runner_set_name,
            runner_set_namespace=row.runner_set_namespace,
            github_run_id=row.github_run_id,
            github_run_number=row.github_run_number,
            github_job_id=row.github_job_id,
            head_sha=row.head_sha,
            head_branch=row.head_branch,
            workflow_name=row.workflow_name,
            workflow_ref=row.job_workflow_ref,
            workflow_path=ref.path,
            job_id=row.job_id,
            job_display_name=row.job_display_name,
            job_repository=row.job_repository,
            job_assigned_at=row.job_assigned_at,
            completion_source=row.completion_source,
            workload_started_at=row.creation_timestamp,
            workload_completed_at=row.completed_at,
            status="pending",
            trigger_source=trigger_source,
            resource_requests=row.resource_requests,
        )
        for config in matching_configs(configs, _match_facts(row, ref), cluster_name=cluster_name)
    ]
