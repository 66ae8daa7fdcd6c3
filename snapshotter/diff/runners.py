"""One runner's next row: its persisted row folded with what was observed (SPEC §4.4).

The newest observation (by resourceVersion) sets the current state: phase, ready,
reason, pool. Facts only accumulate whatever the order: job fields, the time they
were first seen, the resolved run facts, creation and deletion timestamps,
deletion itself, and the completion; an older observation may fill what is still
unknown but never changes what is known. Timestamps are observation times (when
an event was received, or the API server's own), clamped so that a job is never
assigned after its runner finished.
"""

from dataclasses import dataclass, fields, replace
from typing import Any

from snapshotter.diff import completion
from snapshotter.diff.mapping import RunnerSetIndex, runner_state_row
from snapshotter.diff.observed import TERMINAL_PHASES, JobSighting, Observed, Vanished
from snapshotter.diff.rows import RunnerStateRow
from snapshotter.diff.runs import ResolvedRunFacts, run_facts
from snapshotter.model.records import EphemeralRunnerRecord, RunAnnotations
from snapshotter.model.versions import Version

JOB_FIELDS = tuple(f.name for f in fields(JobSighting) if f.name != "at")
RUN_FACTS = tuple(f.name for f in fields(ResolvedRunFacts))
_NO_ANNOTATIONS = RunAnnotations()


@dataclass(frozen=True, slots=True)
class Seen:
    """What is known about one runner in this batch, beside its persisted row."""

    observed: Observed[EphemeralRunnerRecord] | None = None
    vanished: Vanished | None = None
    previous_seq: int = 0  # arrival order of the persisted row's observation (fallback)


def _fill(row: RunnerStateRow, values: dict[str, Any]) -> RunnerStateRow:
    """Fill columns that are still unknown; known values never change."""
    missing = {k: v for k, v in values.items() if v is not None and getattr(row, k) is None}
    return replace(row, **missing) if missing else row


def _current(
    previous: RunnerStateRow | None,
    seen: Seen,
    *,
    index: RunnerSetIndex,
    cluster_name: str,
) -> tuple[RunnerStateRow, bool]:
    """The row with the newest current state, and whether the observation is newer."""
    observed = seen.observed
    if observed is None:
        if previous is None:
            raise ValueError("a runner absent from a list must be a persisted one")
        return previous, False
    if previous is not None:
        stored = Version(previous.resource_version, seen.previous_seq)
        if not observed.version.newer_than(stored):
            return previous, False
    row = runner_state_row(observed.record, index=index, cluster_name=cluster_name, at=observed.at)
    if previous is None:
        return row, True
    keep = {c: getattr(previous, c) for c in (*JOB_FIELDS, *RUN_FACTS)}
    keep |= {
        "job_assigned_at": previous.job_assigned_at,
        "completed_at": previous.completed_at,
        "completion_source": previous.completion_source,
        "is_completed": previous.is_completed,
        "is_deleted": previous.is_deleted,
        "first_seen_at": previous.first_seen_at,
        "creation_timestamp": previous.creation_timestamp or row.creation_timestamp,
        "deletion_timestamp": previous.deletion_timestamp or row.deletion_timestamp,
    }
    if row.runner_set_uid is None and previous.runner_set_uid is not None:
        # the pool left the active set (deleted): the runner still belonged to it
        keep |= {
            "runner_set_uid": previous.runner_set_uid,
            "runner_set_name": previous.runner_set_name,
            "runner_set_namespace": previous.runner_set_namespace,
        }
    return replace(row, **keep), True


def _with_facts(
    row: RunnerStateRow, observed: Observed[EphemeralRunnerRecord] | None
) -> RunnerStateRow:
    if observed is None:
        return row
    if observed.job is not None:
        row = _fill(row, {f: getattr(observed.job, f) for f in JOB_FIELDS})
        row = _fill(row, {"job_assigned_at": observed.job.at})
    record = observed.record
    row = _fill(
        row,
        {
            "creation_timestamp": record.creation_timestamp,
            "deletion_timestamp": record.deletion_timestamp,
        },
    )
    annotations = record.annotations if row.has_job else _NO_ANNOTATIONS
    facts = run_facts(row, annotations)
    return _fill(row, {f: getattr(facts, f) for f in RUN_FACTS})


def _endings(
    previous: RunnerStateRow | None, seen: Seen, row: RunnerStateRow
) -> completion.Endings:
    observed = seen.observed
    terminal_at = observed.terminal_at if observed else None
    if terminal_at is None and row.phase in TERMINAL_PHASES:
        terminal_at = row.last_seen_at
    deleted_at = observed.deleted_at if observed else None
    vanished_at = seen.vanished.at if seen.vanished else None
    if previous is not None and previous.is_deleted and vanished_at is None and deleted_at is None:
        vanished_at = previous.last_seen_at  # deleted before its job was known
    return completion.Endings(terminal_at, deleted_at, vanished_at)


def _completed(
    row: RunnerStateRow, endings: completion.Endings, *, assigned_is_final: bool
) -> RunnerStateRow:
    """Completion, with times clamped so that a job is never assigned after its runner
    finished. The time that is not final yet moves: a job first seen with (or after)
    the end of its runner ran by then; a stored job time pushes a completion that the
    API server dated to the whole second up to it."""
    if not row.is_completed:
        done = completion.completion_of(row, endings)
        if done is None:
            return row
        row = replace(
            row, is_completed=True, completed_at=done.completed_at, completion_source=done.source
        )
        if assigned_is_final and row.job_assigned_at and row.job_assigned_at > done.completed_at:
            return replace(row, completed_at=row.job_assigned_at)
    if row.completed_at and row.job_assigned_at and row.job_assigned_at > row.completed_at:
        row = replace(row, job_assigned_at=row.completed_at)
    return row


def _gone(row: RunnerStateRow, seen: Seen, newer: bool) -> RunnerStateRow:
    observed, vanished = seen.observed, seen.vanished
    if observed is not None and observed.deleted_at is not None and not row.is_deleted:
        at = observed.deleted_at
        return replace(row, is_deleted=True, last_seen_at=at if newer else row.last_seen_at)
    if vanished is not None and not row.is_deleted:
        # the list's RV is the deletion's: any observation at or before it is older
        return replace(
            row, is_deleted=True, last_seen_at=vanished.at, resource_version=vanished.listed.rv
        )
    return row


def next_row(
    previous: RunnerStateRow | None,
    seen: Seen,
    *,
    index: RunnerSetIndex,
    cluster_name: str,
) -> RunnerStateRow:
    """The runner's row after this batch (equal to `previous` if nothing is new)."""
    row, newer = _current(previous, seen, index=index, cluster_name=cluster_name)
    if seen.vanished is not None:
        seq = seen.observed.version.seq if newer and seen.observed else seen.previous_seq
        if not Version(row.resource_version, seq).not_after(seen.vanished.listed):
            seen = replace(seen, vanished=None)  # observed after the list began
    row = _with_facts(row, seen.observed)
    row = _gone(row, seen, newer)
    assigned_is_final = previous is not None and previous.job_assigned_at is not None
    return _completed(row, _endings(previous, seen, row), assigned_is_final=assigned_is_final)
