"""Where observations enter the pending queue: list pages and watch events.

Shared by the poller and the watchers. List pages are processed as they arrive: an
item whose resourceVersion equals the stored one only proves presence and is not
decoded further (unless it is being deleted: a daemon killed after committing its last
state may not have released its finalizer yet); the others are parsed (on the
producer's thread) and queued. A complete list then becomes a marker that decides what
vanished.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from snapshotter.clock import Clock
from snapshotter.errors import ResourceVersionExpired, SnapshotterError
from snapshotter.kube.resources import Resource
from snapshotter.sync.observations import ParseReport, observe
from snapshotter.sync.ports import Source
from snapshotter.sync.queue import ListedStream, PendingQueue

Peek = Callable[[str, str], str | None]  # (resource, uid) -> stored resourceVersion


class QueueFull(SnapshotterError):
    """The pending queue stayed full (the database is behind or down)."""


@dataclass
class Intake:
    queue: PendingQueue
    peek: Peek
    report: ParseReport
    clock: Clock
    room_timeout: float = 30.0  # how long a list waits for room in a full queue

    def list_stream(
        self,
        source: Source,
        resource: Resource,
        namespace: str | None,
        *,
        seq: int,
        at: datetime,
    ) -> ListedStream:
        """Queue what changed in one complete list; restarts once if a continue
        token expired. Raises QueueFull when there is no room for it."""
        try:
            return self._list(source, resource, namespace, seq=seq, at=at)
        except ResourceVersionExpired:
            return self._list(source, resource, namespace, seq=seq, at=at)

    def _list(
        self,
        source: Source,
        resource: Resource,
        namespace: str | None,
        *,
        seq: int,
        at: datetime,
    ) -> ListedStream:
        seen: set[str] = set()
        items, rv = 0, ""
        for page in source.list_pages(resource, namespace):
            for item in page.items:
                items += 1
                ident = item.identity
                if ident is not None:
                    seen.add(ident.uid)
                    if (
                        self.peek(resource.plural, ident.uid) == ident.resource_version
                        and not item.terminating
                    ):
                        continue
                self._enqueue(resource, item.body(), seq=seq, at=at)
            rv = page.resource_version
        return ListedStream(resource.plural, namespace, rv, frozenset(seen), items)

    def _enqueue(self, resource: Resource, body: Any, *, seq: int, at: datetime) -> None:
        obs = observe(resource.plural, body, at=at, seq=seq, report=self.report)
        if obs is not None and not self.queue.put(obs, timeout=self.room_timeout):
            raise QueueFull(f"no room for {resource.plural} in the pending queue")

    def event(self, resource: Resource, kind: str, obj: Any) -> bool:
        """Queue one watch event; False when the queue is full (the event is lost and
        the watch must relist)."""
        obs = observe(
            resource.plural,
            obj,
            at=self.clock(),
            seq=self.queue.next_seq(),
            report=self.report,
            deleted=kind == "DELETED",
        )
        return obs is None or self.queue.offer(obs)
