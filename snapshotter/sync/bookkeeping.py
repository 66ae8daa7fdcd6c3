"""What the applier keeps track of between transactions: what they did (for logs,
metrics and the `--once` summary) and the list and watch positions still to be
written (cursors ride with a transaction that writes rows)."""

from collections.abc import Sequence
from dataclasses import dataclass, field

from snapshotter.clock import monotonic
from snapshotter.diff.changes import ChangeSet, Cursor

CURSOR_SECONDS = 5.0  # watch progress reaches the cursor table at most this often


def stream_name(resource: str, namespace: str | None) -> str:
    """The cursor (and log) name of one list/watch scope."""
    return resource if namespace is None else f"{resource}/{namespace}"


@dataclass(slots=True)
class ApplyResult:
    """What transactions did, for logs, metrics and the `--once` summary."""

    written: dict[str, int] = field(default_factory=dict)
    summary: dict[str, int] = field(default_factory=dict)
    fitted: int = 0
    rejected: int = 0
    seconds: float = 0.0

    def add(self, changes: ChangeSet, written: dict[str, int], fitted: int) -> None:
        for key, n in written.items():
            self.written[key] = self.written.get(key, 0) + n
        for key, n in changes.summary().items():
            self.summary[key] = self.summary.get(key, 0) + n
        self.fitted += fitted

    def merge(self, other: "ApplyResult") -> None:
        for key, n in other.written.items():
            self.written[key] = self.written.get(key, 0) + n
        for key, n in other.summary.items():
            self.summary[key] = self.summary.get(key, 0) + n
        self.fitted += other.fitted
        self.rejected += other.rejected
        self.seconds += other.seconds

    @property
    def rows_written(self) -> int:
        return sum(n for k, n in self.written.items() if not k.startswith("snapshotter_"))


class PendingCursors:
    """List and watch positions waiting for a transaction that writes rows: a
    complete list's at once, watch progress at most every CURSOR_SECONDS."""

    def __init__(self) -> None:
        self._pending: dict[str, Cursor] = {}
        self._written_at = monotonic()

    def note(self, cursor: Cursor) -> None:
        previous = self._pending.get(cursor.resource)
        full = cursor.full_resync or (previous is not None and previous.full_resync)
        self._pending[cursor.resource] = Cursor(cursor.resource, cursor.resource_version, full)

    def due(self) -> list[Cursor]:
        cursors = list(self._pending.values())
        if any(c.full_resync for c in cursors):
            return cursors
        return cursors if monotonic() - self._written_at >= CURSOR_SECONDS else []

    def written(self, cursors: Sequence[Cursor]) -> None:
        if cursors:
            for cursor in cursors:
                if self._pending.get(cursor.resource) == cursor:
                    del self._pending[cursor.resource]
            self._written_at = monotonic()
