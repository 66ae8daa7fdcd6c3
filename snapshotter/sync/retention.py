"""Retention: the leader deletes old rows beside the writer, never in its way (SPEC §4.9).

A pass runs on its own thread, at start (or on becoming leader) and then every
period: for each table with a limit, batches of the oldest rows past it are
deleted, each in its own short transaction, with a pause between two batches so
that the writer's transactions never queue behind a long delete (on PostgreSQL
they touch other rows anyway; SQLite has one writer at a time, held for a batch).
Leadership is looked at before every batch, and every batch's transaction checks
the leader epoch: a replica that stops leading stops deleting at once.
"""

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from snapshotter.clock import Clock, monotonic
from snapshotter.errors import StoreFenced, StoreUnavailable
from snapshotter.ops.stats import SyncStats

log = logging.getLogger(__name__)

LEADERSHIP_CHECK_SECONDS = 5.0  # how soon a new leader starts its first pass
QUIET_WAIT_SECONDS = 0.5  # longest wait for a moment when the writer is idle
QUIET_POLL_SECONDS = 0.002


class Batch(Protocol):
    @property
    def rows(self) -> int: ...

    @property
    def objects(self) -> tuple[str, ...]: ...


class Purging(Protocol):
    """The database side (db/retention.py)."""

    def delete_batch(self, table: str, *, older_than: datetime, limit: int) -> Batch: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Policy:
    """How old each table's rows may get (a table not named is kept forever)."""

    ages: Mapping[str, timedelta]
    batch_size: int = 1000
    pause_seconds: float = 0.1
    period_seconds: float = 3600.0


def run_pass(
    purger: Purging,
    policy: Policy,
    *,
    clock: Clock,
    may_delete: Callable[[], bool] = lambda: True,
    quiet: Callable[[], bool] = lambda: True,
    stop: threading.Event | None = None,
    stats: SyncStats | None = None,
) -> Counter[str]:
    """One pass over every table; rows deleted by table. Each batch waits (a little)
    for a moment when `quiet()` (the writer is idle). Stops early (without error)
    when `may_delete` turns false or `stop` is set; raises StoreFenced and
    StoreUnavailable from the database."""
    stop = stop or threading.Event()
    now = clock()
    deleted: Counter[str] = Counter()
    for table, age in policy.ages.items():
        while may_delete() and not stop.is_set():
            _wait_for_quiet(quiet, stop)
            batch = purger.delete_batch(table, older_than=now - age, limit=policy.batch_size)
            deleted[table] += batch.rows
            _report(table, batch, stats)
            if batch.rows < policy.batch_size:
                break
            stop.wait(policy.pause_seconds)
    return deleted


def _wait_for_quiet(quiet: Callable[[], bool], stop: threading.Event) -> None:
    """Start a batch between two of the writer's transactions where possible; never
    wait long, so that a busy writer cannot starve retention."""
    deadline = monotonic() + QUIET_WAIT_SECONDS
    while not quiet() and monotonic() < deadline and not stop.wait(QUIET_POLL_SECONDS):
        pass


def _report(table: str, batch: Batch, stats: SyncStats | None) -> None:
    if stats is not None and batch.rows:
        stats.retention_deleted(table, batch.rows)
    for described in batch.objects:
        log.warning("retention discarded a rejected object older than its limit %s", described)


class RetentionWorker:
    """The daemon's retention thread: a pass while leading, at first and every period."""

    def __init__(
        self,
        purger: Purging,
        policy: Policy,
        *,
        clock: Clock,
        leading: Callable[[], bool],
        stats: SyncStats,
        quiet: Callable[[], bool] = lambda: True,
        check_seconds: float = LEADERSHIP_CHECK_SECONDS,
    ) -> None:
        """`leading` is asked every `check_seconds` and before every batch."""
        self.purger = purger
        self.policy = policy
        self.clock = clock
        self.leading = leading
        self.stats = stats
        self.quiet = quiet
        self.passes = 0
        self.check_seconds = check_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=timeout)
        self.purger.close()

    def _run(self) -> None:
        due = 0.0  # monotonic time of the next pass
        was_leading = False
        while not self._stop.is_set():
            leading = self.leading()
            if leading and (not was_leading or monotonic() >= due):
                self._pass()
                due = monotonic() + self.policy.period_seconds
            was_leading = leading
            self._stop.wait(self.check_seconds)

    def _pass(self) -> None:
        started = monotonic()
        try:
            deleted = run_pass(
                self.purger,
                self.policy,
                clock=self.clock,
                may_delete=self.leading,
                quiet=self.quiet,
                stop=self._stop,
                stats=self.stats,
            )
        except StoreFenced as e:
            log.warning("retention stopped: another replica leads %s", e)
            return
        except StoreUnavailable as e:
            self.stats.error("retention")
            log.warning("retention pass failed, retrying at the next one error=%s", e)
            return
        except Exception:  # a bug must not end the thread: the next pass tries again
            self.stats.error("retention-crash")
            log.exception("retention pass crashed, retrying at the next one")
            return
        self.passes += 1
        summary = " ".join(f"{t}={n}" for t, n in sorted(deleted.items()))
        log.info(
            "retention pass done %s took_ms=%d",
            summary or "nothing=0",
            1000 * (monotonic() - started),
        )
