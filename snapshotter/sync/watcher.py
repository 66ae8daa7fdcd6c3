"""The watch loop, shaped like client-go's reflector, for one resource in one scope.

list -> apply (a complete list: what vanished meanwhile is recorded, rule 3) ->
watch from the list's resourceVersion with bookmarks and a random 5-10 min server
timeout -> every event, BOOKMARK included, advances the resume point -> a normal
end re-watches from there without relisting. `410 Gone` / "too old resource
version" (etcd compacted past the resume point) -> relist. Any other error -> wait
with jittered backoff and resume from the last resourceVersion. The loop never dies
on an error; only `stop()` ends it.
"""

import logging
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from snapshotter.clock import monotonic
from snapshotter.errors import KubeError, ResourceVersionExpired, SnapshotterError
from snapshotter.kube.client import Listing
from snapshotter.kube.resources import Resource
from snapshotter.kube.watch import WatchEvent
from snapshotter.sync.applier import ApplyResult, ReceivedEvent, stream_name
from snapshotter.sync.backoff import Backoff
from snapshotter.sync.stats import SyncStats

log = logging.getLogger(__name__)


class EventStream(Protocol):
    """One open watch request (kube.watch.WatchStream)."""

    def __iter__(self) -> Iterator[WatchEvent]: ...

    def abort(self) -> None: ...


class WatchSource(Protocol):
    def list_all(self, resource: Resource, namespace: str | None = None) -> Listing: ...

    def open_watch(
        self,
        resource: Resource,
        namespace: str | None,
        *,
        resource_version: str,
        timeout_seconds: int,
        read_timeout: float,
    ) -> EventStream: ...


class EventWriter(Protocol):
    @property
    def position(self) -> int: ...

    def apply_listings(
        self, listings: list[Listing], *, since: int, from_watch: bool = False
    ) -> ApplyResult: ...

    def submit_event(self, event: ReceivedEvent) -> bool: ...

    def set_watch_live(self, stream: str, live: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class WatchTuning:
    read_timeout_seconds: float = 120.0  # > the ~60 s bookmark period
    min_timeout_seconds: int = 300
    max_timeout_seconds: int = 600
    healthy_after_seconds: float = 30.0  # a watch this old resets the backoff


class BufferFull(SnapshotterError):
    """The writer refused an event: relist once it has caught up."""


class Watcher(threading.Thread):
    def __init__(
        self,
        *,
        source: WatchSource,
        writer: EventWriter,
        resource: Resource,
        namespace: str | None,
        stats: SyncStats,
        tuning: WatchTuning = WatchTuning(),
        resume_from: str | None = None,
    ) -> None:
        """`resume_from`: the resourceVersion of a complete list of this scope that is
        already applied (the start-up reconciliation); without it, the loop lists first."""
        self.name_ = stream_name(resource, namespace)
        super().__init__(name=f"watch-{self.name_}", daemon=True)
        self.source = source
        self.writer = writer
        self.resource = resource
        self.namespace = namespace
        self.stats = stats
        self.tuning = tuning
        self._stop_requested = threading.Event()
        self._stream: EventStream | None = None
        # client-go's reflector backs off up to 30 s; one daemon reconnecting every few
        # seconds costs the API server nothing, and a shorter cap shortens the window
        # after an API server outage in which short-lived runners go unseen.
        self._backoff = Backoff(initial=0.5, maximum=5.0)
        self._rng = random.Random()  # noqa: S311 - timeout spreading, not security
        self._resume: str | None = resume_from  # where the next watch starts; None: relist

    def stop(self) -> None:
        self._stop_requested.set()
        stream = self._stream
        if stream is not None:
            stream.abort()

    def run(self) -> None:
        while not self._stop_requested.is_set():
            try:
                if self._resume is None:
                    self._resume = self._relist()
                self._watch(self._resume)
            except ResourceVersionExpired as e:
                self.stats.count("relists", self.name_)
                log.info("watch expired, relisting stream=%s reason=%s", self.name_, e)
                self._resume = None
            except BufferFull:
                log.warning("event buffer full, relisting stream=%s", self.name_)
                self._resume = None
                self._pause()
            except SnapshotterError as e:
                self._failed(e)
            except Exception:  # a bug must not end the loop: log it in full, back off, relist
                self.stats.count("errors", "watch-crash")
                log.exception("watch loop crashed, relisting stream=%s", self.name_)
                self._resume = None
                self._pause()
            if self._resume is None or self._stop_requested.is_set():
                self.writer.set_watch_live(self.name_, False)
        log.info("watch stopped stream=%s", self.name_)

    def _failed(self, error: SnapshotterError) -> None:
        if self._stop_requested.is_set():
            return  # the stream was aborted to stop: not a failure
        kind = "kube" if isinstance(error, KubeError) else "store"
        self.stats.count("errors", kind)
        self.writer.set_watch_live(self.name_, False)
        log.warning("watch failed, retrying stream=%s error=%s", self.name_, error)
        self._pause()

    def _pause(self) -> None:
        self._stop_requested.wait(self._backoff.next())

    def _relist(self) -> str:
        """A complete list, diffed against the database; returns where to watch from."""
        since = self.writer.position
        listing = self.source.list_all(self.resource, self.namespace)
        result = self.writer.apply_listings([listing], since=since, from_watch=True)
        log.info(
            "relisted stream=%s listed=%d vanished=%d rv=%s",
            self.name_,
            len(listing.items),
            result.changes.vanished,
            listing.resource_version,
        )
        return listing.resource_version

    def _watch(self, resume: str) -> None:
        """One watch request; every event moves `_resume`, so that an error in the
        middle of the stream resumes after the last event handed over."""
        self.stats.count("watch_restarts", self.name_)
        timeout = self._rng.randint(
            self.tuning.min_timeout_seconds, self.tuning.max_timeout_seconds
        )
        self._stream = self.source.open_watch(
            self.resource,
            self.namespace,
            resource_version=resume,
            timeout_seconds=timeout,
            read_timeout=self.tuning.read_timeout_seconds,
        )
        if self._stop_requested.is_set():
            self._stream.abort()
        self.writer.set_watch_live(self.name_, True)
        started, seen = monotonic(), 0
        try:
            for event in self._stream:
                seen += 1
                self._resume = self._handle(event) or self._resume
                if seen == 1 or monotonic() - started > self.tuning.healthy_after_seconds:
                    self._backoff.reset()
        finally:
            self._stream = None
        if seen == 0 and monotonic() - started < 1:
            # An immediately closed, empty watch is an error, not a reason to spin.
            self._pause()

    def _handle(self, event: WatchEvent) -> str | None:
        rv = event.resource_version
        if event.type == "BOOKMARK":
            self.stats.count("bookmarks", self.name_)
            return rv
        self.stats.count("events", (self.name_, event.type))
        received = ReceivedEvent(
            resource=self.resource,
            namespace=self.namespace,
            type=event.type,
            object=event.object,
            resource_version=rv,
            position=self.writer.position,
            received_at=monotonic(),
        )
        if not self.writer.submit_event(received):
            raise BufferFull(f"{self.name_}: event buffer full")
        return rv
