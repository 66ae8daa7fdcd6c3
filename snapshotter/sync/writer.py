"""The writer thread: the only one that applies (SPEC §4.1, §7).

It takes work from the pending queue in batches, one transaction per batch: while a
transaction runs, new observations accumulate (merged per object) and the next
batch takes them all, so a burst costs few transactions and a lone event is
committed at once. When the database is unavailable the work goes back to the
queue, and the writer probes the database every second or two, writing again as
soon as it answers; producers never wait on it, except a list that finds the queue
full. Pool counts, history rows and watch progress are written when due.
"""

import logging
import threading

from snapshotter.clock import monotonic
from snapshotter.errors import StoreUnavailable
from snapshotter.sync.applier import Applier, ApplyResult
from snapshotter.sync.backoff import Backoff
from snapshotter.sync.queue import PendingQueue, Work

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0  # how often due counts, history and cursors are looked at


class Writer:
    def __init__(
        self,
        applier: Applier,
        queue: PendingQueue,
        *,
        batch_max: int = 500,
        probe_seconds: float = 1.5,
        retry_outages: bool = True,
    ) -> None:
        """`retry_outages=False` (`--once`): an outage fails the pending lists at once."""
        self.applier = applier
        self.queue = queue
        self.batch_max = batch_max
        self.probe_seconds = probe_seconds
        self.retry_outages = retry_outages
        self.totals = ApplyResult()
        self.database_available = True
        self.last_commit = monotonic()
        self.last_activity = monotonic()  # for the liveness probe
        self._next_probe = 0.0
        self._next_flush = 0.0
        self._crash_backoff = Backoff(initial=1.0, maximum=30.0)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)

    def start(self) -> None:
        if self._thread.ident is None:  # not started yet
            self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._closing.is_set():
            self.last_activity = monotonic()
            if not self.step():
                self.queue.wait_for_work(timeout=0.5)

    def step(self) -> bool:
        """One unit of work; False when there was nothing to do (or it must wait)."""
        waiting = monotonic() < self._next_probe
        if not self.database_available and (waiting or not self._probe()):
            return False
        work = self.queue.take(self.batch_max)
        did = bool(work) and self._apply(work)
        if self.database_available and monotonic() >= self._next_flush:
            self._flush()
            self._next_flush = monotonic() + FLUSH_SECONDS
        return did

    def _probe(self) -> bool:
        try:
            self.applier.store.probe()
        except StoreUnavailable:
            self._next_probe = monotonic() + self.probe_seconds
            return False
        log.info("database reachable again, writing pending=%d", len(self.queue))
        self.database_available = True
        return True

    def _apply(self, work: Work) -> bool:
        try:
            result = self.applier.apply(work)
        except StoreUnavailable as e:
            self._outage(work, e)
            return False
        except Exception:  # a bug must not stop the writer: log it, keep the work, back off
            self.applier.stats.count("errors", "apply")
            log.exception("applying work crashed; retrying it later objects=%d", len(work.objects))
            self.queue.give_back(work)
            self.database_available = False
            self._next_probe = monotonic() + self._crash_backoff.next()
            return False
        self._crash_backoff.reset()
        self.totals.merge(result)
        self.last_commit = monotonic()
        for marker in work.markers:
            marker.finish(marker.result)
        return True

    def _outage(self, work: Work, error: StoreUnavailable) -> None:
        self.applier.stats.count("errors", "store")
        if self.database_available:
            log.warning(
                "database unavailable, holding observations pending=%d error=%s",
                len(self.queue) + len(work.objects),
                error,
            )
        self.database_available = False
        self._next_probe = monotonic() + self.probe_seconds
        if not self.retry_outages:
            self.queue.abandon(work.markers, error)
            work.markers = []
        self.queue.give_back(work)

    def _flush(self, *, force: bool = False) -> None:
        try:
            self.totals.merge(self.applier.flush(force=force))
        except StoreUnavailable as e:
            self._outage(Work(), e)

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is pending (if the database answers within `timeout`), then stop.
        Producers must have stopped before."""
        self._closing.set()
        self.queue.wait_for_work(0)  # wake the thread
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)
        deadline = monotonic() + timeout
        self.database_available = True  # one more attempt, whatever the last probe said
        while monotonic() < deadline:
            work = self.queue.take(self.batch_max)
            if not work or not self._apply(work):
                break
        if self.database_available:
            self._flush(force=True)
        if len(self.queue):
            log.error(
                "database unavailable at shutdown, %d pending objects not committed",
                len(self.queue),
            )
            self.applier.stats.dropped(len(self.queue))
