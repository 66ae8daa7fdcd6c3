"""The output of the diff: exactly the rows to write, plus what the state adopts.

A ChangeSet is applied in one transaction. `delta` is what the in-memory state
adopts (in place) once that transaction has committed.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from snapshotter.diff.rows import (
    RunnerSetHistoryRow,
    RunnerSetRow,
    RunnerStateRow,
    WorkflowRunRow,
)
from snapshotter.diff.state import StateDelta

Row = TypeVar("Row")
# Rows refused by the database that hold nothing to replay: computed again instead.
COUNTS_REFUSED = "github_runner_sets.counts"
HISTORY_REFUSED = "github_runner_set_history"


@dataclass(frozen=True, slots=True)
class RowWrite(Generic[Row]):
    """A whole row to upsert; `new` when no row existed for its uid. `superseded`:
    a runner first seen already gone, because a newer runner holds its name (a
    table keyed by name keeps the newer one's row)."""

    row: Row
    new: bool
    superseded: bool = False


@dataclass(frozen=True, slots=True)
class ChangeSet:
    now: datetime
    runner_sets: tuple[RowWrite[RunnerSetRow], ...] = ()
    runners: tuple[RowWrite[RunnerStateRow], ...] = ()
    runs: tuple[WorkflowRunRow, ...] = ()
    history: tuple[RunnerSetHistoryRow, ...] = ()
    delta: StateDelta = field(default_factory=StateDelta)
    finished: tuple[RunnerStateRow, ...] = ()  # runners that just finished, having run a job
    resolved: tuple[tuple[str, str], ...] = ()  # (resource, uid) refused before, written now
    completed: int = 0
    vanished: int = 0
    deleted: int = 0
    names_reused: int = 0

    @property
    def writes_rows(self) -> bool:
        return bool(self.runner_sets or self.runners or self.runs or self.history or self.resolved)

    def summary(self) -> dict[str, int]:
        return {
            "runner_sets_inserted": sum(w.new for w in self.runner_sets),
            "runner_sets_updated": sum(not w.new for w in self.runner_sets),
            "runners_inserted": sum(w.new for w in self.runners),
            "runners_updated": sum(not w.new for w in self.runners),
            "runners_completed": self.completed,
            "runners_deleted": self.deleted,
            "runners_vanished": self.vanished,
            "runner_names_reused": self.names_reused,
            "runs_derived": len(self.runs),
            "history_rows": len(self.history),
        }


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the observations behind a transaction stopped, for one list/watch stream."""

    resource: str
    resource_version: str | None
    full_resync: bool


@dataclass(frozen=True, slots=True)
class RejectedObject:
    """An object the database refused to store, with the error it gave (SPEC §7)."""

    resource: str
    uid: str
    namespace: str | None
    name: str | None
    resource_version: str
    error: str
