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
from datetime import datetime
from typing import Any

from snapshotter.diff import completion
from snapshotter.diff.completion import EARLIER, Ending
from snapshotter.diff.mapping import RunnerSetIndex, runner_state_row
from snapshotter.diff.observed import JobSighting, Observed, Vanished
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
    if row.resource_requests is None and row.resource_limits is None:
        # a template that cannot be read now keeps what was read before
        keep |= {
            "resource_requests": previous.resource_requests,
            "resource_limits": previous.resource_limits,
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
) -> tuple[RunnerStateRow, datetime | None]:
    """Facts fill what is unknown; returns when the job was received if it is new
    here. A runner deleted without ever showing a deletionTimestamp (its finalizers
    stripped) takes the time its DELETED event was received, unless it was known to
    be gone before."""
    if observed is None:
        return row, None
    job_since = None
    if observed.job is not None and row.job_assigned_at is None:
        row = _fill(row, {f: getattr(observed.job, f) for f in JOB_FIELDS})
        row = _fill(row, {"job_assigned_at": observed.job.at})
        job_since = observed.job.at
    record = observed.record
    deletion = observed.deleting.timestamp if observed.deleting else None
    if deletion is None and not row.is_deleted:
        deletion = observed.deleted_at
    row = _fill(
        row,
        {"creation_timestamp": record.creation_timestamp, "deletion_timestamp": deletion},
    )
    annotations = record.annotations if row.has_job else _NO_ANNOTATIONS
    facts = run_facts(row, annotations)
    return _fill(row, {f: getattr(facts, f) for f in RUN_FACTS}), job_since


def _deletion_since(observed: Observed[EphemeralRunnerRecord] | None) -> datetime | None:
    """When a deletion (a deletionTimestamp, or the DELETED event) was first received."""
    if observed is None:
        return None
    times = [observed.deleting.at] if observed.deleting else []
    times += [observed.deleted_at] if observed.deleted_at else []
    return min(times, default=None)


def _endings(
    previous: RunnerStateRow | None, seen: Seen, row: RunnerStateRow, vanished_at: datetime | None
) -> list[Ending]:
    """The rules' signals: stored ones count as received before this batch."""
    known_deletion = previous is not None and previous.deletion_timestamp is not None
    endings = []
    observed = seen.observed
    if observed is not None and observed.terminal_at is not None:
        endings.append(Ending("phase", observed.terminal_at, observed.terminal_at))
    since = _deletion_since(observed)
    at = row.deletion_timestamp or (observed.deleted_at if observed else None)
    if at is not None:
        endings.append(Ending("deleted", EARLIER if known_deletion or since is None else since, at))
    if previous is not None and previous.is_deleted and previous.deletion_timestamp is None:
        # gone from a list before its job was known: when that list was taken
        endings.append(Ending("vanished", EARLIER, previous.last_seen_at))
    elif vanished_at is not None:
        endings.append(Ending("vanished", vanished_at, vanished_at))
    return endings


def _completed(
    row: RunnerStateRow, endings: list[Ending], *, job_since: datetime | None
) -> RunnerStateRow:
    if row.is_completed:
        if row.completed_at and row.job_assigned_at and row.job_assigned_at > row.completed_at:
            # a job learned after its runner finished is dated back to the end
            return replace(row, job_assigned_at=row.completed_at)
        return row
    has_job = job_since if job_since is not None else (EARLIER if row.has_job else None)
    done = completion.completion_of(endings, job_since=has_job)
    return completion.clamped(row, done, job_since=has_job) if done else row


def _gone(row: RunnerStateRow, seen: Seen, newer: bool) -> tuple[RunnerStateRow, datetime | None]:
    """Deletion is final; returns when the row vanished, if a list decided it here."""
    observed, vanished = seen.observed, seen.vanished
    if observed is not None and observed.deleted_at is not None and not row.is_deleted:
        at = observed.deleted_at
        return replace(row, is_deleted=True, last_seen_at=at if newer else row.last_seen_at), None
    if vanished is not None and not row.is_deleted:
        # the list's RV is the deletion's: any observation at or before it is older
        gone = replace(
            row, is_deleted=True, last_seen_at=vanished.at, resource_version=vanished.listed.rv
        )
        return gone, vanished.at
    return row, None


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
    row, job_since = _with_facts(row, seen.observed)
    row, vanished_at = _gone(row, seen, newer)
    known_job = previous is not None and previous.job_assigned_at is not None
    endings = _endings(previous, seen, row, vanished_at)
    return _completed(row, endings, job_since=EARLIER if known_job else job_since)
