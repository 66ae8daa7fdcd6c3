"""What a complete list says about objects it does not show (SPEC §3.3 rule 3, §4.4).

A list decides what vanished by its own resourceVersion: an object observed after
the list began is not declared gone by it. While a resource's watch is live, a poll
list only *suspects* an absent object: the watch normally delivers its DELETED event
(with its last state) first. A suspect is decided once the watch has delivered past
the list (its DELETED event would have come first), or by the next poll list; newer
news of the object clears it. A watch's own relist decides at once.
"""

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from snapshotter.diff.observed import Observed, Vanished
from snapshotter.model.versions import Version, integer_rv
from snapshotter.sync.queue import ListedStream, ListMarker

LiveRows = Callable[[str], Mapping[str, Any]]  # resource -> live rows by uid
Seqs = Callable[[], Mapping[str, int]]  # uid -> arrival order (non-integer RVs)


class WatchLiveness:
    """Which watch streams are delivering events now (set by the watchers)."""

    def __init__(self) -> None:
        self._live: set[str] = set()

    def set(self, stream: str, live: bool) -> None:
        if live:
            self._live.add(stream)
        else:
            self._live.discard(stream)

    def __contains__(self, stream: str) -> bool:
        return stream in self._live


class Absences:
    def __init__(self, live_rows: LiveRows, seqs: Seqs) -> None:
        self.watches = WatchLiveness()
        self._live_rows = live_rows
        self._seqs = seqs
        self._suspects: dict[tuple[str, str], tuple[str, Vanished]] = {}  # -> (stream, gone)
        self._progress: dict[str, str] = {}  # stream -> applied watch resourceVersion

    def checkpoint(self) -> tuple[dict[Any, Any], dict[str, str]]:
        """What `restore` needs to undo the decisions of a transaction that failed."""
        return dict(self._suspects), dict(self._progress)

    def restore(self, saved: tuple[dict[Any, Any], dict[str, str]]) -> None:
        self._suspects, self._progress = dict(saved[0]), dict(saved[1])

    def progressed(self, progress: Mapping[str, str]) -> None:
        """The watch streams delivered up to these resourceVersions."""
        self._progress.update(progress)

    def _version(self, uid: str, row: Any) -> Version:
        return Version(row.resource_version, self._seqs().get(uid, 0))

    def absent(
        self, marker: ListMarker, arriving: Mapping[tuple[str, str], Observed[Any]]
    ) -> list[Vanished]:
        """Objects the lists do not show that were persisted before them, or arrive in
        the same transaction from before them: gone."""
        vanished: list[Vanished] = []
        for stream in marker.streams:
            listed = marker.version(stream)
            defer = not marker.from_watch and self._watch_is_ahead_of_list(stream) is False
            for uid in stream.seen:
                self._suspects.pop((stream.resource, uid), None)
            for uid, version, row in self._candidates(stream.resource, arriving):
                if uid in stream.seen or not _in_scope(row, stream):
                    continue
                if not version.not_after(listed):
                    continue  # observed after the list began: its absence says nothing
                gone = Vanished(stream.resource, uid, listed, marker.at)
                key = (stream.resource, uid)
                if defer and key not in self._suspects:
                    self._suspects[key] = (stream.name, gone)
                    continue
                suspected = self._suspects.pop(key, None)
                if suspected is not None:
                    # absent since the list that first missed it: the time of that list
                    gone = replace(gone, at=suspected[1].at)
                vanished.append(gone)
        return vanished

    def _candidates(
        self, resource: str, arriving: Mapping[tuple[str, str], Observed[Any]]
    ) -> list[tuple[str, Version, Any]]:
        """Live objects (uid, version, something with a namespace), stored or new in
        the transaction these absences join."""
        live = self._live_rows(resource)
        found = [(uid, self._version(uid, row), row) for uid, row in live.items()]
        for (kind, uid), obs in arriving.items():
            if kind == resource and uid not in live and obs.deleted_at is None:
                found.append((uid, obs.version, obs.record.identity))
        return found

    def _watch_is_ahead_of_list(self, stream: ListedStream) -> bool | None:
        """None: no live watch on this stream; else whether it has delivered
        everything up to the list's resourceVersion."""
        if stream.name not in self.watches:
            return None
        return self._delivered_past(stream.name, stream.resource_version)

    def _delivered_past(self, stream: str, rv: str) -> bool:
        progress = integer_rv(self._progress.get(stream, ""))
        listed = integer_rv(rv)
        return progress is not None and listed is not None and progress >= listed

    def due(self) -> list[Vanished]:
        """Suspects whose watch has delivered past the list that missed them; newer
        news of an object clears it."""
        due: list[Vanished] = []
        for key, (stream, gone) in list(self._suspects.items()):
            row = self._live_rows(gone.resource).get(gone.uid)
            if row is None or not self._version(gone.uid, row).not_after(gone.listed):
                del self._suspects[key]
            elif self._delivered_past(stream, gone.listed.rv):
                del self._suspects[key]
                due.append(gone)
        return due


def _in_scope(row: Any, stream: ListedStream) -> bool:
    return stream.namespace is None or row.namespace == stream.namespace
