"""The watch loop's control flow, driven by scripted streams through its own ports.

The fake implements the loop's `WatchSource` interface (not the API server's HTTP
protocol); the real server is exercised in tests/e2e/test_watch.py. What the loop
hands over is read from a real pending queue.
"""

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from snapshotter.errors import (
    KubeForbidden,
    KubeUnavailable,
    KubeUnreachable,
    KubeWarmingUp,
    ResourceVersionExpired,
)
from snapshotter.kube import resources
from snapshotter.kube.client import Page
from snapshotter.kube.decode import decode_page
from snapshotter.kube.resources import Resource
from snapshotter.kube.watch import WatchEvent
from snapshotter.ops.stats import SyncStats
from snapshotter.sync.applier import WatchLiveness
from snapshotter.sync.backoff import Backoff
from snapshotter.sync.intake import Intake
from snapshotter.sync.observations import ParseReport
from snapshotter.sync.queue import PendingQueue
from snapshotter.sync.watcher import Watcher, WatchTuning
from tests.support import arc_objects as arc
from tests.support.scenario import T0

ERS = resources.EPHEMERAL_RUNNERS


def obj(rv: str, uid: str = "u1") -> dict[str, Any]:
    return arc.ephemeral_runner(name=uid or "bookmark", uid=uid or "none", rv=rv)


class Script:
    """One watch request: events to yield, then an optional error."""

    def __init__(self, events: list[WatchEvent], error: Exception | None = None) -> None:
        self.events, self.error = events, error

    def __iter__(self) -> Iterator[WatchEvent]:
        yield from self.events
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        pass


@dataclass
class FakeSource:
    scripts: list[Script]
    stop: threading.Event
    lists: int = 0
    watched_from: list[str] = field(default_factory=list)
    # called by the closing request, in the watcher's thread: stopping it there, not
    # from another thread, leaves no time for one more request
    on_over: Callable[[], None] | None = None

    def list_pages(self, resource: Resource, namespace: str | None = None) -> Iterator[Page]:
        self.lists += 1
        body = {"items": [], "metadata": {"resourceVersion": f"list-{self.lists}"}}
        yield decode_page(msgspec.json.encode(body))

    def open_watch(
        self,
        resource: Resource,
        namespace: str | None,
        *,
        resource_version: str,
        timeout_seconds: int,
        read_timeout: float,
    ) -> Script:
        assert 300 <= timeout_seconds <= 600
        self.watched_from.append(resource_version)
        if not self.scripts:
            self.stop.set()
            if self.on_over is not None:
                self.on_over()
            return Script([], KubeUnavailable("script over"))
        return self.scripts.pop(0)


@dataclass
class Run:
    source: FakeSource
    queue: PendingQueue
    liveness: list[bool]

    def handed_over(self) -> tuple[list[str], list[bool], dict[str, str]]:
        """Queued object versions, markers (from_watch) and progress, in order."""
        versions: list[str] = []
        markers: list[bool] = []
        progress: dict[str, str] = {}
        while work := self.queue.take(1000):
            versions += [o.version.rv for o in work.objects]
            markers += [m.from_watch for m in work.markers]
            progress.update(work.progress)
        return versions, markers, progress


class RecordingLiveness(WatchLiveness):
    def __init__(self, record: list[bool]) -> None:
        super().__init__()
        self.record = record

    def set(self, stream: str, live: bool) -> None:
        super().set(stream, live)
        self.record.append(live)


def run(scripts: list[Script], resume_from: str | None = None, cap: int = 100) -> Run:
    """Run a watcher over `scripts` until they are used up."""
    stop = threading.Event()
    source, queue = FakeSource(scripts, stop), PendingQueue(cap=cap)
    live: list[bool] = []
    watcher = Watcher(
        source=source,
        intake=Intake(queue, lambda _r, _u: None, ParseReport(), lambda: T0),
        liveness=RecordingLiveness(live),
        resource=ERS,
        namespace=None,
        stats=SyncStats(),
        tuning=WatchTuning(room_fraction=2.0),
        resume_from=resume_from,
    )
    watcher._backoff.maximum = watcher._backoff.initial = 0.001
    source.on_over = watcher.stop
    stopper = stop_when(stop, watcher)
    watcher.run()
    stopper.join()
    return Run(source, queue, live)


def stop_when(stop: threading.Event, watcher: Watcher) -> threading.Thread:
    """Stop the watcher once the script is over (or after 10 s at worst)."""

    def wait_then_stop() -> None:
        stop.wait(10)
        watcher.stop()

    thread = threading.Thread(target=wait_then_stop)
    thread.start()
    return thread


@pytest.mark.timeout(20)
def test_lists_then_watches_from_the_list_and_follows_bookmarks() -> None:
    result = run(
        [
            Script(
                [
                    WatchEvent("ADDED", obj("5")),
                    WatchEvent("BOOKMARK", {"metadata": {"resourceVersion": "9"}}),
                    WatchEvent("MODIFIED", obj("12")),
                ]
            ),  # then the server ends the request
            Script([WatchEvent("BOOKMARK", {"metadata": {"resourceVersion": "20"}})]),
        ]
    )
    assert result.source.lists == 1
    assert result.source.watched_from[:3] == ["list-1", "12", "20"]
    versions, markers, progress = result.handed_over()
    assert versions == ["12"]  # the two events of one object, merged: the newest
    assert markers == [True]  # the watch's own relist
    assert progress == {"ephemeralrunners": "20"}


@pytest.mark.timeout(20)
def test_410_relists_and_other_errors_resume_from_the_last_version() -> None:
    result = run(
        [
            Script([WatchEvent("ADDED", obj("5"))], KubeUnavailable("connection reset")),
            Script([WatchEvent("MODIFIED", obj("6"))], ResourceVersionExpired("too old")),
            Script([]),
        ]
    )
    assert result.source.watched_from[:3] == ["list-1", "5", "list-2"]
    assert result.handed_over()[1] == [True, True]
    assert False in result.liveness  # not live while disconnected


@pytest.mark.timeout(20)
def test_a_start_up_list_version_skips_the_first_list() -> None:
    result = run([Script([WatchEvent("ADDED", obj("8"))])], resume_from="7")
    assert result.source.lists == 0
    assert result.source.watched_from[:2] == ["7", "8"]


@pytest.mark.timeout(20)
def test_a_full_queue_relists_instead_of_losing_the_event() -> None:
    events = [WatchEvent("ADDED", obj(str(n), uid=f"u{n}")) for n in range(5, 8)]
    result = run([Script(events)], resume_from="4", cap=2)
    assert result.source.lists >= 1  # the third object found no room: relist
    versions, _, _ = result.handed_over()
    assert versions == ["5", "6"]


def test_an_api_server_coming_back_is_retried_fast_then_with_backoff() -> None:
    """Connection refused, then 403 while the restarted server's RBAC warms up, then
    503/429 until its CRDs are served and its watch cache filled: a fast retry, for
    a bounded time; any other error backs off at once."""
    tuning = WatchTuning(fast_retry_seconds=0.25, fast_retry_window_seconds=0.3)
    watcher = Watcher(
        source=FakeSource([], threading.Event()),
        intake=Intake(PendingQueue(cap=10), lambda _r, _u: None, ParseReport(), lambda: T0),
        liveness=WatchLiveness(),
        resource=ERS,
        namespace=None,
        stats=SyncStats(),
        tuning=tuning,
    )
    watcher._backoff = Backoff(initial=3.0, maximum=3.0, jitter=0)
    refused = KubeUnreachable("watch: connection refused")
    warming = KubeForbidden("watch: HTTP 403 Forbidden")
    assert watcher.retry_delay(refused) == 0.25
    assert watcher.retry_delay(warming) == 0.25
    assert (
        watcher.retry_delay(KubeWarmingUp("watch: HTTP 429: storage is (re)initializing")) == 0.25
    )
    threading.Event().wait(0.35)  # longer than the fast window: a real problem
    assert watcher.retry_delay(warming) == 3.0
    assert watcher.retry_delay(KubeUnavailable("HTTP 500")) == 3.0
