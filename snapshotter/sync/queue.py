"""The pending queue between the producers and the one writer (SPEC §4.1, §7).

Shaped after client-go's DeltaFIFO: pending work is keyed by object, and a new
observation of an object already pending is merged into its entry (the newest
state plus the facts that must survive, see `diff.observed`), which keeps its place
in line. So while the database is slow or down, memory grows with the number of
distinct objects, not with events, and the cap is in objects. A complete list
adds its changed objects, then a marker: the marker is due only once everything
queued before it has been taken, so what is pending is always applied before a
list decides what vanished. Watch progress (event and bookmark resourceVersions)
is queued the same way. A failed transaction gives its work back, merged with
whatever arrived meanwhile, at the front of the line.
"""

import itertools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from snapshotter.clock import monotonic
from snapshotter.diff.observed import Observed, merged
from snapshotter.errors import SnapshotterError
from snapshotter.model.versions import Version

Key = tuple[str, str]
# Arrival orders below this one are for what a previous process received and the
# rejects table kept (see `outstanding`): after everything loaded (0), before
# anything this process receives.
FIRST_SEQ = 3


class StandingBy(SnapshotterError):
    """A list given to a replica that does not write."""


@dataclass(frozen=True, slots=True)
class ListedStream:
    """One stream's part of a complete list: what it saw, at which resourceVersion."""

    resource: str
    namespace: str | None
    resource_version: str
    seen: frozenset[str]
    items: int = 0

    @property
    def name(self) -> str:
        return self.resource if self.namespace is None else f"{self.resource}/{self.namespace}"


@dataclass(eq=False)
class ListMarker:
    """A complete list (one stream, or all of a poll cycle's), waiting to decide what
    vanished. `from_watch`: a watch's own relist, whose absences are final at once."""

    streams: tuple[ListedStream, ...]
    seq: int  # arrival order when the list began
    at: datetime  # when the list began
    from_watch: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None

    def version(self, stream: ListedStream) -> Version:
        return Version(stream.resource_version, self.seq)

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()


@dataclass(slots=True)
class Work:
    """What the writer takes in one go."""

    objects: list[Observed[Any]] = field(default_factory=list)
    markers: list[ListMarker] = field(default_factory=list)
    progress: dict[str, str] = field(default_factory=dict)  # stream -> resourceVersion
    tickets: dict[Key, int] = field(default_factory=dict)
    marker_tickets: list[int] = field(default_factory=list)  # places in line, kept on
    progress_tickets: dict[str, int] = field(default_factory=dict)  # a give-back

    def __bool__(self) -> bool:
        return bool(self.objects or self.markers or self.progress)


class PendingQueue:
    def __init__(self, cap: int = 100_000) -> None:
        self.cap = cap
        self._cond = threading.Condition()
        self._objects: OrderedDict[Key, tuple[int, Observed[Any]]] = OrderedDict()
        self._markers: list[tuple[int, ListMarker]] = []
        self._progress: dict[str, tuple[int, str]] = {}
        self._tickets = itertools.count(1)
        self._seq = itertools.count(FIRST_SEQ)
        self._seq_lock = threading.Lock()

    def next_seq(self) -> int:
        """Arrival order of an observation (or of a list's start)."""
        with self._seq_lock:
            return next(self._seq)

    def __len__(self) -> int:
        return len(self._objects)

    def pending_keys(self) -> set[Key]:
        """The objects waiting to be written (for `/debug`-style introspection)."""
        with self._cond:
            return set(self._objects)

    def _merge_in(self, obs: Observed[Any]) -> bool:
        key = obs.key
        entry = self._objects.get(key)
        if entry is not None:
            self._objects[key] = (entry[0], merged(entry[1], obs))
            return True
        if len(self._objects) >= self.cap:
            return False
        self._objects[key] = (next(self._tickets), obs)
        self._cond.notify_all()
        return True

    def offer(self, obs: Observed[Any]) -> bool:
        """Queue an observation; False (nothing queued) when full and the object is not
        pending already."""
        with self._cond:
            return self._merge_in(obs)

    def put(self, obs: Observed[Any], *, timeout: float) -> bool:
        """Queue an observation, waiting up to `timeout` seconds for room."""
        deadline = monotonic() + timeout
        with self._cond:
            while not self._merge_in(obs):
                left = deadline - monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 1.0))
            return True

    def put_marker(self, marker: ListMarker) -> None:
        with self._cond:
            self._markers.append((next(self._tickets), marker))
            self._cond.notify_all()

    def note_progress(self, stream: str, resource_version: str) -> None:
        with self._cond:
            self._progress[stream] = (next(self._tickets), resource_version)
            self._cond.notify_all()

    def wait_for_work(self, timeout: float) -> bool:
        with self._cond:
            if not (self._objects or self._markers or self._progress):
                self._cond.wait(timeout)
            return bool(self._objects or self._markers or self._progress)

    def take(self, max_objects: int) -> Work:
        """Up to `max_objects` objects from the front, none queued after the first
        pending list (what arrived after a list is applied after it), and the lists
        and progress that are due (nothing queued before them is left)."""
        work = Work()
        with self._cond:
            limit = self._markers[0][0] if self._markers else None
            while len(work.objects) < max_objects and self._objects:
                key, (ticket, obs) = next(iter(self._objects.items()))
                if limit is not None and ticket > limit:
                    break
                del self._objects[key]
                work.objects.append(obs)
                work.tickets[key] = ticket
            first = next(iter(self._objects.values()))[0] if self._objects else None
            due = [m for m in self._markers if first is None or m[0] < first]
            self._markers = [m for m in self._markers if not (first is None or m[0] < first)]
            work.markers = [m for _, m in due]
            work.marker_tickets = [t for t, _ in due]
            for stream, (ticket, rv) in list(self._progress.items()):
                if first is None or ticket < first:
                    work.progress[stream] = rv
                    work.progress_tickets[stream] = ticket
                    del self._progress[stream]
            self._cond.notify_all()  # room for producers waiting in put()
        return work

    def give_back(self, work: Work) -> None:
        """Return untaken work after a failed transaction, in its places in line."""
        with self._cond:
            for obs in reversed(work.objects):
                key = obs.key
                ticket = work.tickets.get(key, 0)
                entry = self._objects.pop(key, None)
                self._objects[key] = (ticket, merged(obs, entry[1]) if entry else obs)
                self._objects.move_to_end(key, last=False)
            given = list(zip(work.marker_tickets, work.markers, strict=True))
            self._markers = sorted(given + self._markers, key=lambda m: m[0])
            for stream, rv in work.progress.items():
                # newer progress of the stream, noted meanwhile, wins
                self._progress.setdefault(stream, (work.progress_tickets.get(stream, 0), rv))
            self._cond.notify_all()

    def drop_older_than(self, cutoff: datetime, *, but_before: datetime | None = None) -> int:
        """Forget objects last observed before `cutoff` (but those last observed
        before `but_before`), and pending lists and progress (a standby's queue: only
        a takeover's recent past matters)."""
        with self._cond:
            old = [
                key
                for key, (_, obs) in self._objects.items()
                if obs.at < cutoff and (but_before is None or obs.at >= but_before)
            ]
            for key in old:
                del self._objects[key]
            markers, self._markers = self._markers, []
            self._progress.clear()
            self._cond.notify_all()
        for _, marker in markers:
            marker.finish(error=StandingBy("a standby does not apply lists"))
        return len(old)

    def abandon(self, markers: Sequence[ListMarker], error: BaseException) -> None:
        """Fail the given markers (their lists will not be applied)."""
        for marker in markers:
            marker.finish(error=error)
