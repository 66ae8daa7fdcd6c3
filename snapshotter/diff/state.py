"""What the diff compares against, and what it is handed.

`PersistedState` mirrors the rows that are still live in the database (active runner
sets, runners not yet deleted) plus the EphemeralRunnerSets, which are only needed
for `desired_runners` and are never stored. `Observation` is one batch of what
Kubernetes showed: a complete list of a resource, or some watch events.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from snapshotter.diff.rows import RunnerSetRow, RunnerStateRow
from snapshotter.model.records import (
    EphemeralRunnerRecord,
    EphemeralRunnerSetRecord,
    RunnerSetRecord,
)

R = TypeVar("R")


class Namespaced(Protocol):
    """What rows and records share: enough to scope a list and to skip unchanged objects."""

    @property
    def namespace(self) -> str: ...

    @property
    def resource_version(self) -> str: ...


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
    - `complete`: this is a full list, so persisted objects it does not mention are gone;
      `scope` limits that to the listed namespaces (None: all namespaces).
    """

    changed: Mapping[str, R] = field(default_factory=dict)
    unchanged: frozenset[str] = frozenset()
    deleted: Mapping[str, R] = field(default_factory=dict)
    complete: bool = False
    scope: frozenset[str] | None = None

    def absent_from(self, persisted: Mapping[str, Namespaced]) -> list[str]:
        """Persisted uids a complete list did not mention: they vanished unseen."""
        if not self.complete:
            return []
        return [
            uid
            for uid, row in persisted.items()
            if uid not in self.changed
            and uid not in self.unchanged
            and uid not in self.deleted
            and (self.scope is None or row.namespace in self.scope)
        ]


@dataclass(frozen=True, slots=True)
class Observation:
    runner_sets: Observed[RunnerSetRecord] = field(default_factory=Observed)
    ephemeral_runner_sets: Observed[EphemeralRunnerSetRecord] = field(default_factory=Observed)
    runners: Observed[EphemeralRunnerRecord] = field(default_factory=Observed)
