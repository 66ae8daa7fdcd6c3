"""The writer thread: the only one that applies (SPEC §4.1, §6, §7).

It takes work from the pending queue in batches, one transaction per batch: while a
transaction runs, new observations accumulate (merged per object) and the next
batch takes them all, so a burst costs few transactions and a lone event is
committed at once. When the database is unavailable the work goes back to the
queue, and the writer probes the database every second or two, writing again as
soon as it answers; producers never wait on it, except a list that finds the queue
full. Pool counts, history rows and watch progress are written when due.

With leader election, only the leader writes. A standby keeps what its watches saw
in the last few lease durations (what a failover gap needs) and drops older
observations; on becoming leader it bumps the leader epoch (every later write of
the previous leader then fails in the database), reloads the persisted state and
applies what it holds. A transaction refused by that fence makes it a standby at
once, whatever its Lease says.
"""

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from snapshotter.clock import monotonic
from snapshotter.errors import StoreFenced, StoreUnavailable
from snapshotter.sync.applier import Applier, ApplyResult
from snapshotter.sync.backoff import Backoff
from snapshotter.sync.queue import PendingQueue, Work

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0  # how often due counts, history and cursors are looked at
TRIM_SECONDS = 1.0  # how often a standby drops what a takeover would not need
SUCCESSOR_SECONDS = 5.0  # how often a replica keeping everything looks for a successor
REQUEST_SECONDS = 10.0  # how often the leader looks for a requested retry of rejects


class Writer:
    def __init__(
        self,
        applier: Applier,
        queue: PendingQueue,
        *,
        batch_max: int = 500,
        probe_seconds: float = 1.5,
        idle_probe_seconds: float = 10.0,
        retry_outages: bool = True,
        reject_retry_seconds: float | None = 300.0,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        """`retry_outages=False` (`--once`): an outage fails the pending lists at once.
        `idle_probe_seconds`: a round trip to the database at least this often, so
        that readiness knows it answers even when nothing is written.
        `reject_retry_seconds`: rejected objects are written again at the first
        step, then this often and when `snapshotter rejects retry` asks (None: only
        when `retry_rejected` is called)."""
        self.applier = applier
        self.queue = queue
        self.batch_max = batch_max
        self.probe_seconds = probe_seconds
        self.idle_probe_seconds = idle_probe_seconds
        self.retry_outages = retry_outages
        self.totals = ApplyResult()
        self.failed: StoreUnavailable | None = None  # `--once` gave up on this
        self.database_available = True
        self.last_success = monotonic()  # last round trip that worked
        self.last_commit = monotonic()  # last work committed (or leadership taken)
        self.last_activity = monotonic()  # for the liveness probe
        self._next_probe = 0.0
        self._next_flush = 0.0
        self._next_trim = 0.0
        self.reject_retry_seconds = reject_retry_seconds
        self.flush_seconds = flush_seconds
        self._next_retry = 0.0  # the first step retries what was rejected before
        self._next_request_check = 0.0
        self.retry_requested = False  # a retry asked for, not done yet
        self._crash_backoff = Backoff(initial=1.0, maximum=30.0)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._leading = True  # without leader election, the one writer
        self._takeover: Callable[[], None] | None = None
        self._then: Callable[[], None] | None = None
        self._keep: timedelta | None = None  # standby: how far back observations matter
        self._keep_once_superseded: timedelta | None = None  # `_keep` once another leads
        self._kept_before: datetime | None = None  # what only this replica holds
        self._next_successor_check = 0.0
        self._lock = threading.Lock()
        self._applying = False  # in a transaction of observations (for retention)

    # -- leadership ----------------------------------------------------------------

    def follow(self, *, keep: timedelta | None, once_superseded: timedelta | None = None) -> None:
        """Stop writing (a standby); keep observations of the last `keep` only
        (None: all of them, for a leader that stepped down while nobody could write,
        until the database shows that another replica took over: from then on, the
        last `once_superseded`, like any standby, since that successor held them too)."""
        with self._lock:
            self._leading, self._takeover, self._keep = False, None, keep
            self._keep_once_superseded = once_superseded if keep is None else None
            self._kept_before = None
        self.applier.stats.leading(False)

    def lead(self, takeover: Callable[[], None], *, then: Callable[[], None]) -> None:
        """Start writing once `takeover` (run on this thread: bump the epoch, reload
        the state) has succeeded; `then` runs once this writer leads (a reconciliation
        asked for earlier would find it still a standby and do nothing)."""
        with self._lock:
            self._takeover, self._then = takeover, then
        self.queue.wait_for_work(0)

    @property
    def leading(self) -> bool:
        return self._leading

    @property
    def idle(self) -> bool:
        """Nothing queued and no transaction of observations under way: a moment
        when other work (retention) keeps nothing waiting."""
        return not self._applying and not len(self.queue)

    def _take_over(self) -> bool:
        """Run a pending takeover; False while this replica may not write."""
        with self._lock:
            takeover = self._takeover
        if takeover is None:
            return self._leading
        takeover()  # raises StoreUnavailable while the database is away
        with self._lock:
            then = None
            if self._takeover is takeover:
                self._leading, self._takeover, self._keep = True, None, None
                self._keep_once_superseded, self._kept_before = None, None
                self.last_commit = monotonic()
                then, self._then = self._then, None
        self.applier.stats.leading(self._leading)
        if then is not None:
            then()
        return self._leading

    # -- the loop ------------------------------------------------------------------

    def start(self) -> None:
        if self._thread.ident is None:  # not started yet
            self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._closing.is_set():
            self.last_activity = monotonic()
            try:
                did = self.step()
            except Exception:  # a bug must not end the writer: log it, back off, go on
                self.applier.stats.error("writer")
                log.exception("the writer's step crashed; retrying after a pause")
                self._closing.wait(self._crash_backoff.next())
                continue
            if not did:
                self.queue.wait_for_work(timeout=0.5)

    def step(self) -> bool:
        """One unit of work; False when there was nothing to do (or it must wait)."""
        if self.failed is not None:
            return False
        waiting = monotonic() < self._next_probe
        if not self.database_available and (waiting or not self._probe()):
            return False
        try:
            if not self._take_over():
                self._trim()
                self._probe_when_idle()
                return False
        except StoreUnavailable as e:
            self._outage(Work(), e)
            return False
        if not self._retry_rejected_when_due():
            return False  # the database went away: nothing else before it is done
        work = self.queue.take(self.batch_max)
        did = bool(work) and self._apply(work)
        if self.database_available and monotonic() >= self._next_flush:
            self._flush()
            self._next_flush = monotonic() + self.flush_seconds
        self._probe_when_idle()
        return did

    def request_retry(self) -> None:
        """Retry what the database refused at the next step, before anything else."""
        self.retry_requested = True
        self.queue.wait_for_work(0)

    def _retry_due(self, now: float) -> bool:
        if self.retry_requested:
            return True
        if self.reject_retry_seconds is None:
            return False
        if now >= self._next_retry:
            return True
        if now >= self._next_request_check:
            self._next_request_check = now + REQUEST_SECONDS
            return self.applier.store.retry_requested()
        return False

    def _retry_rejected_when_due(self) -> bool:
        """Write again what the database refused: at the first step, periodically, and
        soon after `snapshotter rejects retry` asked for it, before any other work.
        False if that failed (the retry stays due)."""
        now = monotonic()
        try:
            if not self._retry_due(now):
                return True
            self.totals.merge(self.applier.retry_rejected())
            self.applier.store.retry_done()
        except StoreFenced as e:
            self._fenced(e)
            return False
        except StoreUnavailable as e:
            self._outage(Work(), e)
            return False
        self.retry_requested = False
        self._next_retry = now + (self.reject_retry_seconds or 0)
        self._next_request_check = now + REQUEST_SECONDS
        return True

    def unreachable_for(self) -> float:
        """Seconds since the database last answered (0 while it does)."""
        return 0.0 if self.database_available else monotonic() - self.last_success

    def stalled_for(self) -> float:
        """Seconds this leader has held work without committing any (0 when nothing is
        pending): a database that answers probes but refuses every commit (a
        read-only node after a failover, locks) is as good as away."""
        if not self._leading or not len(self.queue):
            return 0.0
        return monotonic() - self.last_commit

    def _trim(self) -> None:
        keep = self._keep
        if keep is None:
            self._trim_once_superseded()
            return
        if monotonic() < self._next_trim:
            return
        self._next_trim = monotonic() + TRIM_SECONDS
        cutoff = self.applier.clock() - keep
        dropped = self.queue.drop_older_than(cutoff, but_before=self._kept_before)
        if dropped:
            log.debug("standby dropped old observations objects=%d", dropped)

    def _trim_once_superseded(self) -> None:
        """A replica that stepped down keeping everything: once the database shows a
        newer leader epoch, the successor has taken over with what its own watches
        held (the `keep` before it took over), so this one trims like any standby
        again, but for what was last observed before that: nobody else holds it
        (raises StoreUnavailable)."""
        keep = self._keep_once_superseded
        if keep is None or monotonic() < self._next_successor_check:
            return
        self._next_successor_check = monotonic() + SUCCESSOR_SECONDS
        since = self.applier.store.superseded_at()
        if since is None:
            return
        with self._lock:
            if self._leading or self._keep is not None or self._keep_once_superseded is not keep:
                return  # leadership changed meanwhile
            self._keep, self._keep_once_superseded = keep, None
            self._kept_before = since - keep
        log.info(
            "another replica leads now, trimming again keep_s=%.0f kept_before=%s pending=%d",
            keep.total_seconds(),
            self._kept_before.isoformat(),
            len(self.queue),
        )
        self._next_trim = 0.0
        self._trim()

    def _probe_when_idle(self) -> None:
        if monotonic() - self.last_success >= self.idle_probe_seconds:
            self._probe()

    def _probe(self) -> bool:
        try:
            self.applier.store.probe()
        except StoreUnavailable as e:
            self._next_probe = monotonic() + self.probe_seconds
            if self.database_available:
                self._outage(Work(), e)
            return False
        self.last_success = monotonic()
        if not self.database_available:
            duty = "writing" if self._leading else "as a standby, holding"
            log.info("database reachable again, %s pending=%d", duty, len(self.queue))
            self.database_available = True
            self.applier.stats.database_available(True)
        return True

    def _apply(self, work: Work) -> bool:
        self._applying = True
        try:
            return self._applied(work)
        finally:
            self._applying = False

    def _applied(self, work: Work) -> bool:
        try:
            result = self.applier.apply(work)
        except StoreFenced as e:
            self.queue.give_back(work)
            self._fenced(e)
            return False
        except StoreUnavailable as e:
            self._outage(work, e)
            return False
        except Exception:  # a bug must not stop the writer: log it, keep the work, back off
            self.applier.stats.error("apply")
            log.exception("applying work crashed; retrying it later objects=%d", len(work.objects))
            self.queue.give_back(work)
            self.database_available = False
            self._next_probe = monotonic() + self._crash_backoff.next()
            return False
        self._crash_backoff.reset()
        self.totals.merge(result)
        self.last_success = self.last_commit = monotonic()
        for marker in work.markers:
            marker.finish(marker.result)
        return True

    def _outage(self, work: Work, error: StoreUnavailable) -> None:
        self.applier.stats.error("database")
        if self.database_available:
            log.warning(
                "database unavailable, holding observations pending=%d error=%s",
                len(self.queue) + len(work.objects),
                error,
            )
            self.applier.stats.database_available(False)
        self.database_available = False
        self._next_probe = monotonic() + self.probe_seconds
        if not self.retry_outages:  # `--once`: it failed, and writes nothing more
            self.failed = error
            self.queue.abandon(work.markers, error)
            self.queue.abandon(self.queue.take(len(self.queue) + 1).markers, error)
            return
        self.queue.give_back(work)

    def _fenced(self, error: StoreFenced) -> None:
        log.warning("another replica leads now, this one stops writing: %s", error)
        self.applier.stats.error("fenced")
        self.follow(keep=self._keep or timedelta(seconds=30))

    def _flush(self, *, force: bool = False) -> None:
        try:
            self.totals.merge(self.applier.flush(force=force))
        except StoreFenced as e:
            self._fenced(e)
        except StoreUnavailable as e:
            self._outage(Work(), e)

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is pending (if the database answers within `timeout`, and this
        replica leads), then stop. Producers must have stopped before. The thread is
        given as long as one database call may take, so that the final commit never
        runs beside a transaction of its own."""
        self._closing.set()
        self.queue.wait_for_work(0)  # wake the thread
        if self._thread.is_alive():
            self._thread.join(timeout=max(timeout, self.applier.store.timeout + 5))
        if self._thread.is_alive():
            log.error(
                "the writer is still in a database call at shutdown; %d pending objects "
                "not committed",
                len(self.queue),
            )
            self.applier.stats.dropped(len(self.queue))
            return
        if not self._leading or self.failed is not None:
            return
        deadline = monotonic() + timeout
        self.database_available = True  # one more attempt, whatever the last probe said
        while monotonic() < deadline:
            work = self.queue.take(self.batch_max)
            if not work or not self._apply(work):
                break
        if self.database_available and self._leading:
            self._flush(force=True)
        if len(self.queue) and self._leading:
            log.error(
                "database unavailable at shutdown, %d pending objects not committed",
                len(self.queue),
            )
            self.applier.stats.dropped(len(self.queue))
