"""What the diff compares against, and what it is handed.

`PersistedState` mirrors the rows that are still live in the database (active runner
sets, runners not yet deleted) plus the EphemeralRunnerSets, which are only needed
for `desired_runners` and are never stored. `Observation` is one batch of what
Kubernetes showed: a complete list of a resource, or some watch events.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from snapshotter.diff.rows import RunnerSetRow, RunnerStateRow
from snapshotter.model.records import (
    EphemeralRunnerRecord,
    EphemeralRunnerSetRecord,
    RunnerSetRecord,
)

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class PersistedState:
    runner_sets: Mapping[str, RunnerSetRow] = field(default_factory=dict)
    runners: Mapping[str, RunnerStateRow] = field(default_factory=dict)
    ephemeral_runner_sets: Mapping[str, EphemeralRunnerSetRecord] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Observed(Generic[R]):
    """What one batch says about one resource, keyed by uid.

    - `changed`: objects whose resourceVersion differs from the persisted one.
    - `unchanged`: objects seen with the persisted resourceVersion (or that must be
      left alone); they prove presence and nothing else.
    - `deleted`: DELETED watch events; the value is the object's last state.
    - `complete`: this is a full list, so persisted objects it does not mention are gone.
    """

    changed: Mapping[str, R] = field(default_factory=dict)
    unchanged: frozenset[str] = frozenset()
    deleted: Mapping[str, R] = field(default_factory=dict)
    complete: bool = False

    def absent_from(self, persisted: Mapping[str, object]) -> list[str]:
        """Persisted uids a complete list did not mention: they vanished unseen."""
        if not self.complete:
            return []
        return [
            uid
            for uid in persisted
            if uid not in self.changed and uid not in self.unchanged and uid not in self.deleted
        ]


@dataclass(frozen=True, slots=True)
class Observation:
    runner_sets: Observed[RunnerSetRecord] = field(default_factory=Observed)
    ephemeral_runner_sets: Observed[EphemeralRunnerSetRecord] = field(default_factory=Observed)
    runners: Observed[EphemeralRunnerRecord] = field(default_factory=Observed)
