"""The completion rule (SPEC §3.3): when a runner counts as finished, once.

Since ARC 0.13 a runner that finished its job is deleted without a terminal phase,
so "being deleted while it had a job" is the usual completion signal; a terminal
phase only shows on older controllers or for failures.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from snapshotter.diff.rows import CompletionSource, RunnerStateRow

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
Gone = Literal["deleted", "vanished"] | None


@dataclass(frozen=True, slots=True)
class Completion:
    completed_at: datetime
    source: CompletionSource


def completion_of(row: RunnerStateRow, *, gone: Gone, now: datetime) -> Completion | None:
    """The completion `row` reaches now, or None if it is not finished (yet).

    `gone` says how the object disappeared: a DELETED event, or absence from a
    complete list. A runner that never had a job is deleted without completing.
    """
    if row.phase in TERMINAL_PHASES:
        return Completion(now, "phase")
    if not row.has_job:
        return None
    if row.deletion_timestamp is not None:
        return Completion(row.deletion_timestamp, "deleted")
    if gone == "deleted":
        return Completion(now, "deleted")
    if gone == "vanished":
        return Completion(now, "vanished")
    return None


def ran_a_job(row: RunnerStateRow) -> bool:
    """Whether a finished runner gets workflow-run rows.

    A runner with job fields ran a job. `Succeeded` (ARC <= 0.12) means the runner
    exited 0 after its one job even when the listener's job fields were lost. A
    `Failed` runner without a job never started one (e.g. `InvalidPod`).
    """
    return row.has_job or row.phase == "Succeeded"
