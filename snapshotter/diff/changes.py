"""The output of the diff: exactly the rows to write, plus the next persisted state.

A ChangeSet is applied in one transaction. `delta` is what the in-memory mirror of
the persisted state adopts once that transaction has committed.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from snapshotter.diff.rows import (
    RunnerSetHistoryRow,
    RunnerSetRow,
    RunnerStateRow,
    WorkflowRunRow,
)
from snapshotter.diff.state import PersistedState
from snapshotter.model.records import EphemeralRunnerSetRecord

Row = TypeVar("Row")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class RowUpdate:
    """Changed columns of the row with this uid (bookkeeping columns included)."""

    uid: str
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TableChanges(Generic[Row]):
    inserts: tuple[Row, ...] = ()
    updates: tuple[RowUpdate, ...] = ()

    def __len__(self) -> int:
        return len(self.inserts) + len(self.updates)


@dataclass(frozen=True, slots=True)
class MirrorDelta(Generic[V]):
    """Entries to upsert into, and uids to drop from, one map of the persisted state."""

    upserts: Mapping[str, V] = field(default_factory=dict)
    removals: frozenset[str] = frozenset()

    def applied_to(self, current: Mapping[str, V]) -> dict[str, V]:
        merged = {uid: v for uid, v in current.items() if uid not in self.removals}
        merged.update(self.upserts)
        return merged


@dataclass(frozen=True, slots=True)
class StateDelta:
    runner_sets: MirrorDelta[RunnerSetRow] = field(default_factory=MirrorDelta)
    runners: MirrorDelta[RunnerStateRow] = field(default_factory=MirrorDelta)
    ephemeral_runner_sets: MirrorDelta[EphemeralRunnerSetRecord] = field(
        default_factory=MirrorDelta
    )

    def applied_to(self, state: PersistedState) -> PersistedState:
        return PersistedState(
            runner_sets=self.runner_sets.applied_to(state.runner_sets),
            runners=self.runners.applied_to(state.runners),
            ephemeral_runner_sets=self.ephemeral_runner_sets.applied_to(
                state.ephemeral_runner_sets
            ),
        )


@dataclass(frozen=True, slots=True)
class ChangeSet:
    now: datetime
    runner_sets: TableChanges[RunnerSetRow] = field(default_factory=TableChanges)
    runners: TableChanges[RunnerStateRow] = field(default_factory=TableChanges)
    runs: tuple[WorkflowRunRow, ...] = ()
    history: tuple[RunnerSetHistoryRow, ...] = ()
    delta: StateDelta = field(default_factory=StateDelta)
    completed: int = 0
    vanished: int = 0
    deleted: int = 0

    @property
    def writes_rows(self) -> bool:
        return bool(len(self.runner_sets) or len(self.runners) or self.runs or self.history)

    def summary(self) -> dict[str, int]:
        return {
            "runner_sets_inserted": len(self.runner_sets.inserts),
            "runner_sets_updated": len(self.runner_sets.updates),
            "runners_inserted": len(self.runners.inserts),
            "runners_updated": len(self.runners.updates),
            "runners_completed": self.completed,
            "runners_deleted": self.deleted,
            "runners_vanished": self.vanished,
            "runs_derived": len(self.runs),
            "history_rows": len(self.history),
        }


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the observation behind a ChangeSet stopped, for one resource."""

    resource: str
    resource_version: str | None
    full_resync: bool
