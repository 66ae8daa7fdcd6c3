"""The watch loop's control flow, driven by scripted streams through its own ports.

The fakes implement the loop's `WatchSource`/`EventWriter` interfaces (not the API
server's HTTP protocol); the real server is exercised in tests/e2e/test_watch.py.
"""

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from snapshotter.diff.changes import ChangeSet
from snapshotter.errors import KubeUnavailable, ResourceVersionExpired
from snapshotter.kube import resources
from snapshotter.kube.client import Listing
from snapshotter.kube.resources import Resource
from snapshotter.kube.watch import WatchEvent
from snapshotter.sync.applier import ApplyResult, ReceivedEvent
from snapshotter.sync.stats import SyncStats
from snapshotter.sync.watcher import Watcher, WatchTuning
from tests.support.scenario import T0

ERS = resources.EPHEMERAL_RUNNERS


def obj(rv: str, uid: str = "u1") -> dict[str, Any]:
    return {"metadata": {"uid": uid, "resourceVersion": rv, "namespace": "ns", "name": uid}}


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

    def list_all(self, resource: Resource, namespace: str | None = None) -> Listing:
        self.lists += 1
        return Listing(resource, namespace, [], f"list-{self.lists}")

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
            return Script([], KubeUnavailable("script over"))
        return self.scripts.pop(0)


@dataclass
class FakeWriter:
    position: int = 0
    received: list[ReceivedEvent] = field(default_factory=list)
    relists: list[bool] = field(default_factory=list)
    live: list[bool] = field(default_factory=list)

    def apply_listings(
        self, listings: list[Listing], *, since: int, from_watch: bool = False
    ) -> ApplyResult:
        self.relists.append(from_watch)
        return ApplyResult(changes=ChangeSet(now=T0), written={})

    def submit_event(self, event: ReceivedEvent) -> bool:
        self.received.append(event)
        return True

    def set_watch_live(self, stream: str, live: bool) -> None:
        self.live.append(live)


def run(
    scripts: list[Script], resume_from: str | None = None, writer: FakeWriter | None = None
) -> tuple[FakeSource, FakeWriter]:
    """Run a watcher over `scripts` until they are used up."""
    stop = threading.Event()
    source, writer = FakeSource(scripts, stop), writer or FakeWriter()
    watcher = Watcher(
        source=source,
        writer=writer,
        resource=ERS,
        namespace=None,
        stats=SyncStats(),
        tuning=WatchTuning(),
        resume_from=resume_from,
    )
    watcher._backoff.maximum = watcher._backoff.initial = 0.001
    stopper = stop_when(stop, watcher)
    watcher.run()
    stopper.join()
    return source, writer


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
    source, writer = run(
        [
            Script(
                [
                    WatchEvent("ADDED", obj("5")),
                    WatchEvent("BOOKMARK", obj("9", uid="")),
                    WatchEvent("MODIFIED", obj("12")),
                ]
            ),  # then the server ends the request
            Script([WatchEvent("BOOKMARK", obj("20", uid=""))]),
        ]
    )
    assert source.lists == 1
    assert writer.relists == [True]
    assert source.watched_from[:3] == ["list-1", "12", "20"]
    assert [e.type for e in writer.received] == ["ADDED", "MODIFIED"]


@pytest.mark.timeout(20)
def test_410_relists_and_other_errors_resume_from_the_last_version() -> None:
    source, writer = run(
        [
            Script([WatchEvent("ADDED", obj("5"))], KubeUnavailable("connection reset")),
            Script([WatchEvent("MODIFIED", obj("6"))], ResourceVersionExpired("too old")),
            Script([]),
        ]
    )
    assert source.watched_from[:3] == ["list-1", "5", "list-2"]
    assert writer.relists == [True, True]
    assert False in writer.live  # not live while disconnected


@pytest.mark.timeout(20)
def test_a_start_up_list_version_skips_the_first_list() -> None:
    source, _ = run([Script([WatchEvent("ADDED", obj("8"))])], resume_from="7")
    assert source.lists == 0
    assert source.watched_from[:2] == ["7", "8"]


class RefusingWriter(FakeWriter):
    def submit_event(self, event: ReceivedEvent) -> bool:
        return False


@pytest.mark.timeout(20)
def test_a_full_buffer_relists() -> None:
    source, _ = run(
        [Script([WatchEvent("ADDED", obj("5"))])], resume_from="4", writer=RefusingWriter()
    )
    assert source.lists >= 1  # the buffer refused the event: relist instead of losing it
