"""Counters of the sync engine, for logs, tests and the metrics endpoint.

Updated from several threads (watchers, the poller, the writer), so every change
takes a lock.
"""

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class LatencyStats:
    """Seconds from receiving an observation to committing it."""

    count: int = 0
    total: float = 0.0
    maximum: float = 0.0

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.maximum = max(self.maximum, seconds)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


@dataclass
class SyncStats:
    watch_restarts: Counter[str] = field(default_factory=Counter)  # by stream
    relists: Counter[str] = field(default_factory=Counter)  # 410 / expired, by stream
    bookmarks: Counter[str] = field(default_factory=Counter)
    events: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stream, type)
    errors: Counter[str] = field(default_factory=Counter)  # by kind
    rows: Counter[str] = field(default_factory=Counter)  # "table.kind" -> rows written
    fitted: Counter[str] = field(default_factory=Counter)  # "table.column" -> values fitted
    rejected: Counter[str] = field(default_factory=Counter)  # by resource
    dropped_events: int = 0  # refused by a full queue (the watch relists)
    commits: int = 0
    apply_latency: LatencyStats = field(default_factory=LatencyStats)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, counter: str, key: object, n: int = 1) -> None:
        with self._lock:
            getattr(self, counter)[key] += n

    def dropped(self, n: int) -> None:
        with self._lock:
            self.dropped_events += n

    def latency(self, seconds: float) -> None:
        with self._lock:
            self.apply_latency.observe(seconds)

    def committed(self, rows: Mapping[str, int], fitted: Mapping[str, int]) -> None:
        with self._lock:
            self.commits += 1
            self.rows.update(rows)
            self.fitted.update(fitted)

    def line(self) -> str:
        """A compact `key=value` summary for the periodic log line."""
        with self._lock:
            events = sum(self.events.values())
            return (
                f"events={events} bookmarks={sum(self.bookmarks.values())} "
                f"watch_restarts={sum(self.watch_restarts.values())} "
                f"relists_410={sum(self.relists.values())} dropped={self.dropped_events} "
                f"errors={sum(self.errors.values())} fitted={sum(self.fitted.values())} "
                f"rejected={sum(self.rejected.values())} commits={self.commits} "
                f"events_applied={self.apply_latency.count} "
                f"apply_latency_mean_ms={1000 * self.apply_latency.mean:.0f} "
                f"apply_latency_max_ms={1000 * self.apply_latency.maximum:.0f}"
            )
