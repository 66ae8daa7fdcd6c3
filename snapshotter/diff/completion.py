"""The completion rule (SPEC §3.3): when a runner counts as finished, once.

Since ARC 0.13 a runner that finished its job is deleted without a terminal phase,
so "being deleted while it had a job" is the usual completion signal; a terminal
phase only shows on older controllers or for failures. The rule reads facts that
only accumulate (job fields, deletion), so whichever order observations arrive in,
a runner completes once, and what was written stays.
"""

from dataclasses import dataclass
from datetime import datetime

from snapshotter.diff.rows import CompletionSource, RunnerStateRow


@dataclass(frozen=True, slots=True)
class Completion:
    completed_at: datetime
    source: CompletionSource


@dataclass(frozen=True, slots=True)
class Endings:
    """When the signals that can finish a runner were first received."""

    terminal_at: datetime | None = None  # a terminal phase (Succeeded, Failed)
    deleted_at: datetime | None = None  # a DELETED event
    vanished_at: datetime | None = None  # absent from a complete list


def completion_of(row: RunnerStateRow, endings: Endings) -> Completion | None:
    """The completion `row` reaches, or None if it is not finished (yet).

    The rule's order decides between signals: a terminal phase, then a deletion
    (at its deletionTimestamp when known), then absence from a list. A runner that
    never had a job is deleted without completing.
    """
    if endings.terminal_at is not None:
        return Completion(endings.terminal_at, "phase")
    if not row.has_job:
        return None
    if row.deletion_timestamp is not None:
        return Completion(row.deletion_timestamp, "deleted")
    if endings.deleted_at is not None:
        return Completion(endings.deleted_at, "deleted")
    if endings.vanished_at is not None:
        return Completion(endings.vanished_at, "vanished")
    return None


def ran_a_job(row: RunnerStateRow) -> bool:
    """Whether a finished runner gets workflow-run rows.

    A runner with job fields ran a job. `Succeeded` (ARC <= 0.12) means the runner
    exited 0 after its one job even when the listener's job fields were lost. A
    `Failed` runner without a job never started one (e.g. `InvalidPod`).
    """
    return row.has_job or row.phase == "Succeeded"


def runs_due(previous: RunnerStateRow | None, row: RunnerStateRow) -> bool:
    """Whether `row` just became a finished runner that ran a job."""
    now_due = row.is_completed and ran_a_job(row)
    was_due = previous is not None and previous.is_completed and ran_a_job(previous)
    return now_due and not was_due
