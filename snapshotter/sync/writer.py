"""Runs every Applier call on one dedicated thread, so that there is one writer.

Poll cycles submit complete lists and wait for the result. Watch events go into a
bounded buffer that the writer thread drains in batches, one transaction per batch:
while a transaction runs, new events accumulate and the next batch takes them all,
so a burst costs few transactions and a lone event is committed at once. If the
database is down, the batch stays in the buffer and is retried with backoff; when
the buffer is full, new events are refused and the watcher relists instead.
"""

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from snapshotter.errors import StoreError
from snapshotter.kube.client import Listing
from snapshotter.sync.applier import Applier, ApplyResult, ReceivedEvent
from snapshotter.sync.backoff import Backoff

log = logging.getLogger(__name__)

T = TypeVar("T")


class SerialWriter:
    def __init__(
        self, applier: Applier, *, buffer_size: int = 10_000, batch_max: int = 500
    ) -> None:
        self.applier = applier
        self.buffer_size = buffer_size
        self.batch_max = batch_max
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="applier")
        self._pending: deque[ReceivedEvent] = deque()
        self._lock = threading.Lock()
        self._drain_scheduled = False
        self._closing = threading.Event()
        self._backoff = Backoff(initial=0.5, maximum=30.0)

    @property
    def position(self) -> int:
        return self.applier.position

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the writer thread and wait for its result."""
        return self._executor.submit(fn).result()

    def apply_listings(
        self, listings: Sequence[Listing], *, since: int, from_watch: bool = False
    ) -> ApplyResult:
        return self.call(
            lambda: self.applier.apply_listings(listings, since=since, from_watch=from_watch)
        )

    def set_watch_live(self, stream: str, live: bool) -> None:
        self._executor.submit(self.applier.set_watch_live, stream, live)

    def submit_event(self, event: ReceivedEvent) -> bool:
        """Queue a watch event; False when the buffer is full (the event is dropped)."""
        with self._lock:
            if len(self._pending) >= self.buffer_size:
                self.applier.stats.dropped(1)
                return False
            self._pending.append(event)
            if not self._drain_scheduled:
                self._drain_scheduled = True
                self._executor.submit(self._drain)
        return True

    def _take_batch(self) -> list[ReceivedEvent]:
        with self._lock:
            return [self._pending.popleft() for _ in range(min(self.batch_max, len(self._pending)))]

    def _drain(self) -> None:
        """One batch, one transaction; reschedules itself while events are pending."""
        batch = self._take_batch()
        try:
            if batch:
                self.applier.apply_events(batch)
                self._backoff.reset()
        except StoreError as e:
            self.applier.stats.count("errors", "store")
            delay = self._backoff.next()
            log.warning(
                "writing events failed, retrying in %.1fs events=%d error=%s", delay, len(batch), e
            )
            with self._lock:
                self._pending.extendleft(reversed(batch))
            self._closing.wait(delay)
        except Exception:  # a bug must not stop the writer: log it, count it, go on
            self.applier.stats.count("errors", "apply")
            log.exception("applying %d watch events crashed; they are dropped", len(batch))
        finally:
            with self._lock:
                if self._pending and not self._closing.is_set():
                    self._executor.submit(self._drain)
                else:
                    self._drain_scheduled = False

    def _drain_all(self) -> None:
        while batch := self._take_batch():
            try:
                self.applier.apply_events(batch)
            except StoreError as e:
                with self._lock:
                    lost = len(batch) + len(self._pending)
                    self._pending.clear()
                log.error(
                    "database unavailable at shutdown, %d events not committed error=%s",
                    lost,
                    e,
                )
                self.applier.stats.dropped(lost)

    def close(self) -> None:
        """Commit what is buffered (one attempt if the database is down), then stop.
        Producers must have stopped submitting before."""
        self._closing.set()
        self.call(self._drain_all)
        self._executor.shutdown(wait=True)
