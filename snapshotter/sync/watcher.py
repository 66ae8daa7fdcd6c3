"""The watch loop, shaped like client-go's reflector, for one resource in one scope.

list -> queue (a complete list: what vanished meanwhile is recorded, rule 3) ->
watch from the list's resourceVersion with bookmarks and a random 5-10 min server
timeout -> every event, BOOKMARK included, advances the resume point (and is
queued as the stream's progress) -> a normal end re-watches from there without
relisting. `410 Gone` / "too old resource version" (etcd compacted past the resume
point) or 504 "too large resource version" -> relist. An event refused by a full
pending queue -> wait for room, then relist. Any other error -> wait with jittered
backoff and resume from the last resourceVersion. An API server that restarts first
refuses connections, then answers 403 while its RBAC warms up, 503 while it installs
the CRDs' paths and 429 while it fills its watch cache: those are retried every
`fast_retry_seconds` for `fast_retry_window_seconds`, because every second before
the watch is back is a second in which a short-lived runner goes unseen; other
errors, or these lasting longer, back off. The loop never dies on an error;
only `stop()` ends it.
"""

import logging
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from snapshotter.clock import monotonic
from snapshotter.errors import (
    KubeError,
    KubeForbidden,
    KubeUnreachable,
    KubeWarmingUp,
    ResourceVersionExpired,
    SnapshotterError,
)
from snapshotter.kube.client import Page
from snapshotter.kube.resources import Resource
from snapshotter.kube.watch import WatchEvent
from snapshotter.ops.stats import SyncStats
from snapshotter.sync.applier import WatchLiveness, stream_name
from snapshotter.sync.backoff import Backoff
from snapshotter.sync.intake import Intake
from snapshotter.sync.queue import ListMarker

log = logging.getLogger(__name__)


class EventStream(Protocol):
    """One open watch request (kube.watch.WatchStream)."""

    def __iter__(self) -> Iterator[WatchEvent]: ...

    def abort(self) -> None: ...


class WatchSource(Protocol):
    def list_pages(self, resource: Resource, namespace: str | None = None) -> Iterator[Page]: ...

    def open_watch(
        self,
        resource: Resource,
        namespace: str | None,
        *,
        resource_version: str,
        timeout_seconds: int,
        read_timeout: float,
    ) -> EventStream: ...


@dataclass(frozen=True, slots=True)
class WatchTuning:
    read_timeout_seconds: float = 120.0  # > the ~60 s bookmark period
    min_timeout_seconds: int = 300
    max_timeout_seconds: int = 600
    healthy_after_seconds: float = 30.0  # a watch this old resets the backoff
    room_fraction: float = 0.9  # after an overflow, relist once the queue is below this
    fast_retry_seconds: float = 0.25  # while the API server is coming back
    fast_retry_window_seconds: float = 30.0


def is_server_coming_back(error: SnapshotterError) -> bool:
    """No answer at all, 403 from an API server whose authorizer is not ready yet,
    or 503/429 while it installs the CRDs and fills its watch cache: what a
    restarting API server looks like in its first seconds."""
    return isinstance(error, KubeUnreachable | KubeForbidden | KubeWarmingUp)


class BufferFull(SnapshotterError):
    """The pending queue refused an event: relist once there is room."""


class Watcher(threading.Thread):
    def __init__(
        self,
        *,
        source: WatchSource,
        intake: Intake,
        liveness: WatchLiveness,
        resource: Resource,
        namespace: str | None,
        stats: SyncStats,
        tuning: WatchTuning = WatchTuning(),
        resume_from: str | None = None,
    ) -> None:
        """`resume_from`: the resourceVersion of a complete list of this scope that is
        already queued (the start-up reconciliation); without it, the loop lists first."""
        self.name_ = stream_name(resource.plural, namespace)
        super().__init__(name=f"watch-{self.name_}", daemon=True)
        self.source = source
        self.intake = intake
        self.liveness = liveness
        self.resource = resource
        self.namespace = namespace
        self.stats = stats
        self.tuning = tuning
        self.last_activity = monotonic()  # for the liveness probe
        self._stop_requested = threading.Event()
        self._stream: EventStream | None = None
        # client-go's reflector backs off up to 30 s; one daemon reconnecting every few
        # seconds costs the API server nothing, and a shorter cap shortens the window
        # after an API server outage in which short-lived runners go unseen.
        self._backoff = Backoff(initial=0.5, maximum=5.0)
        self._rng = random.Random()  # noqa: S311 - timeout spreading, not security
        self._failing_since: float | None = None  # the current run of failures
        self._resume: str | None = resume_from  # where the next watch starts; None: relist

    def stop(self) -> None:
        self._stop_requested.set()
        stream = self._stream
        if stream is not None:
            stream.abort()

    def run(self) -> None:
        while not self._stop_requested.is_set():
            self.last_activity = monotonic()
            try:
                if self._resume is None:
                    self._resume = self._relist()
                self._watch(self._resume)
            except ResourceVersionExpired as e:
                self.stats.relisted(self.name_)
                log.info("watch expired, relisting stream=%s reason=%s", self.name_, e)
                self._resume = None
            except BufferFull:
                self.stats.refused_event()
                log.warning(
                    "pending queue full, relisting when there is room stream=%s", self.name_
                )
                self._resume = None
                self._wait_for_room()
            except SnapshotterError as e:
                self._failed(e)
            except Exception:  # a bug must not end the loop: log it in full, back off, relist
                self.stats.error("watch-crash")
                log.exception("watch loop crashed, relisting stream=%s", self.name_)
                self._resume = None
                self._pause()
            if self._resume is None or self._stop_requested.is_set():
                self.liveness.set(self.name_, False)
        log.info("watch stopped stream=%s", self.name_)

    def _failed(self, error: SnapshotterError) -> None:
        if self._stop_requested.is_set():
            return  # the stream was aborted to stop: not a failure
        kind = "kube" if isinstance(error, KubeError) else "queue"
        self.stats.error(kind)
        self.liveness.set(self.name_, False)
        log.warning("watch failed, retrying stream=%s error=%s", self.name_, error)
        self._stop_requested.wait(self.retry_delay(error))

    def retry_delay(self, error: SnapshotterError) -> float:
        """How long to wait before trying again after `error`."""
        now = monotonic()
        if self._failing_since is None:
            self._failing_since = now
        window = self.tuning.fast_retry_window_seconds
        if is_server_coming_back(error) and now - self._failing_since < window:
            return self.tuning.fast_retry_seconds
        return self._backoff.next()

    def _pause(self) -> None:
        self._stop_requested.wait(self._backoff.next())

    def _wait_for_room(self) -> None:
        queue = self.intake.queue
        while len(queue) >= queue.cap * self.tuning.room_fraction:
            if self._stop_requested.wait(1.0):
                return

    def _relist(self) -> str:
        """A complete list, queued with its marker; returns where to watch from."""
        seq, at = self.intake.queue.next_seq(), self.intake.clock()
        listed = self.intake.list_stream(self.source, self.resource, self.namespace, seq=seq, at=at)
        self.intake.queue.put_marker(ListMarker((listed,), seq, at, from_watch=True))
        log.info(
            "relisted stream=%s listed=%d rv=%s", self.name_, listed.items, listed.resource_version
        )
        return listed.resource_version

    def _watch(self, resume: str) -> None:
        """One watch request; every event moves `_resume`, so that an error in the
        middle of the stream resumes after the last event handed over."""
        self.stats.watch_opened(self.name_)
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
        self.liveness.set(self.name_, True)
        started, seen = monotonic(), 0
        try:
            for event in self._stream:
                seen += 1
                self.last_activity = monotonic()
                self._resume = self._handle(event) or self._resume
                if seen == 1 or monotonic() - started > self.tuning.healthy_after_seconds:
                    self._backoff.reset()
                    # the server delivered: a later failure starts a new run of them
                    # (a watch accepted and dropped at once does not)
                    self._failing_since = None
        finally:
            self._stream = None
        if seen == 0 and monotonic() - started < 1:
            # An immediately closed, empty watch is an error, not a reason to spin.
            self._pause()

    def _handle(self, event: WatchEvent) -> str | None:
        rv = event.resource_version
        if event.type == "BOOKMARK":
            self.stats.bookmark(self.name_)
        else:
            self.stats.event(self.name_, event.type)
            if not self.intake.event(self.resource, event.type, event.object):
                raise BufferFull(f"{self.name_}: pending queue full")
        if rv is not None:
            self.intake.queue.note_progress(self.name_, rv)
        return rv
