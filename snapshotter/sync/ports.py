"""What the sync engine needs from Kubernetes and from the database.

Declared here, by their consumer, so that `sync` depends on behaviour rather than on
the `kube` and `db` packages' classes.
"""

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Protocol

from snapshotter.diff.changes import ChangeSet, Cursor, RejectedObject
from snapshotter.diff.matching import WorkflowConfig
from snapshotter.diff.observed import Input
from snapshotter.diff.rows import RunnerSetRow, RunnerStateRow
from snapshotter.diff.state import SyncState
from snapshotter.kube.client import Page
from snapshotter.kube.resources import Resource
from snapshotter.sync.outstanding import Refusal


class Source(Protocol):
    def list_pages(self, resource: Resource, namespace: str | None = None) -> Iterator[Page]: ...


class Settled(Protocol):
    @property
    def pending(self) -> int: ...

    @property
    def completed(self) -> int: ...

    @property
    def tasks(self) -> int: ...


class WriteResult(Protocol):
    @property
    def rows(self) -> dict[str, int]: ...

    @property
    def fitted(self) -> Counter[str]: ...

    @property
    def refused(self) -> list[RejectedObject]: ...


class Store(Protocol):
    @property
    def timeout(self) -> float: ...

    def probe(self) -> None: ...

    def load_state(self) -> SyncState: ...

    def load_rejects(self) -> Sequence[Refusal]: ...

    def retry_requested(self) -> bool: ...

    def retry_done(self) -> None: ...

    def superseded_at(self) -> datetime | None: ...

    def lookup(
        self, resource: str, uids: Sequence[str]
    ) -> Sequence[RunnerSetRow | RunnerStateRow]: ...

    def load_configs(self) -> list[WorkflowConfig]: ...

    def apply(self, changes: ChangeSet, cursors: Iterable[Cursor] = ()) -> WriteResult: ...

    def reject(
        self, rejected: RejectedObject, *, payload: Sequence[Input], now: datetime
    ) -> None: ...

    def settle_switchover(
        self,
        *,
        listed_before: datetime,
        namespaces: Sequence[str],
        seen: frozenset[str],
        now: datetime,
    ) -> Settled: ...
