"""The completion rule (SPEC §3.3): when a runner counts as finished, once.

Since ARC 0.13 a runner that finished its job is deleted without a terminal phase,
so "being deleted while it had a job" is the usual completion signal; a terminal
phase only shows on older controllers or for failures. A runner finishes at the
first moment, in the order its signals were received, at which one of the rules
holds: a terminal phase; a deletion, or an absence from a complete list, while it
had a job (a rule that needs the job holds from when both were received). Rules
that hold from the same moment are taken in the rule's order. So however the
signals were batched, the same rule wins, and what was written stays.

Times are receipt times: a fact stored by an earlier transaction counts as
received before anything in the current one (`EARLIER`).
"""

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from snapshotter.diff.rows import CompletionSource, RunnerStateRow

EARLIER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Ending:
    """One rule's signal: since when it was known, and the completed_at it gives."""

    source: CompletionSource
    since: datetime
    at: datetime

    @property
    def rank(self) -> int:
        return RULE_ORDER.index(self.source)


RULE_ORDER: tuple[CompletionSource, ...] = ("phase", "deleted", "vanished")


@dataclass(frozen=True, slots=True)
class Completion:
    completed_at: datetime
    source: CompletionSource
    held_since: datetime  # when the rule first held


def completion_of(endings: list[Ending], *, job_since: datetime | None) -> Completion | None:
    """The completion the signals reach, or None if no rule holds (yet).

    `job_since`: when the runner's job fields were received (EARLIER if stored
    before), None if it had no job. A terminal phase needs no job; the other rules
    hold once both their signal and the job were received.
    """
    held: list[tuple[datetime, int, Ending]] = []
    for ending in endings:
        if ending.source == "phase":
            held.append((ending.since, ending.rank, ending))
        elif job_since is not None:
            held.append((max(ending.since, job_since), ending.rank, ending))
    if not held:
        return None
    since, _, first = min(held, key=lambda h: (h[0], h[1]))
    return Completion(first.at, first.source, since)


def clamped(row: RunnerStateRow, done: Completion, *, job_since: datetime | None) -> RunnerStateRow:
    """`row` completed by `done`, its times made consistent: a job is never assigned
    after its runner finished. Of the two times, the one received later gives way:
    a job known before the end moves the completion up to it; a job learned with or
    after the end (a replayed event, a list) is dated back to the end."""
    completed_at = done.completed_at
    assigned = row.job_assigned_at
    if assigned is not None and assigned > completed_at:
        if job_since is not None and job_since < done.held_since:
            completed_at = assigned
        else:
            assigned = completed_at
    return replace(
        row,
        is_completed=True,
        completed_at=completed_at,
        completion_source=done.source,
        job_assigned_at=assigned,
    )


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
