"""What the sync engine needs from Kubernetes and from the database.

Declared here, by their consumer, so that `sync` depends on behaviour rather than on
the `kube` and `db` packages' classes.
"""

from collections.abc import Iterable
from typing import Protocol

from snapshotter.diff.changes import ChangeSet, Cursor
from snapshotter.diff.matching import WorkflowConfig
from snapshotter.diff.state import PersistedState
from snapshotter.kube.client import Listing
from snapshotter.kube.resources import Resource


class Source(Protocol):
    def list_all(self, resource: Resource, namespace: str | None = None) -> Listing: ...


class WriteResult(Protocol):
    @property
    def rows(self) -> dict[str, int]: ...

    @property
    def total(self) -> int: ...


class Store(Protocol):
    def load_state(self) -> PersistedState: ...

    def load_configs(self) -> list[WorkflowConfig]: ...

    def apply(self, changes: ChangeSet, cursors: Iterable[Cursor] = ()) -> WriteResult: ...
