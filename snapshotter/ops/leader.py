"""Leader election on a Lease, with client-go's semantics and timings.

A candidate acquires the Lease when it is free (no holder, released) or expired
(not renewed for a lease duration, measured on the candidate's own clock from when
it last saw the record change, so clocks need not agree), and renews it every retry
period. A leader that cannot renew within the renew deadline stops leading. On stop
the Lease is released (holder cleared, duration 1 s), so a standby takes over at
once; so it is when the leader may no longer lead (`may_lead`: the database out of
its reach, while a standby may well reach it), and it does not take the Lease again
until it may. Losing the Lease is only half of the story: a paused leader may write after
its Lease expired, which is why writes are also fenced in the database (an epoch
that each new leader bumps and every transaction checks).

A Lease call that fails for another reason than a lost race (RBAC, an invalid name,
the API server away) is never silent: it is logged at WARNING (once a minute at most
while it goes on), counted by reason, and once the Lease has been out of reach for
`trouble_seconds` the replica stops reporting ready.
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from snapshotter.clock import Clock, monotonic
from snapshotter.errors import KubeConflict, KubeError, KubeForbidden, KubeInvalid
from snapshotter.kube.lease import LeaseRecord

log = logging.getLogger(__name__)


class LeaseLock(Protocol):
    def get(self) -> LeaseRecord | None: ...

    def create(self, record: LeaseRecord) -> LeaseRecord: ...

    def update(self, record: LeaseRecord) -> LeaseRecord: ...


@dataclass(frozen=True, slots=True)
class Timing:
    """client-go's defaults."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    trouble_seconds: float = 30.0  # Lease out of reach this long: not ready
    warn_every_seconds: float = 60.0


def error_reason(error: KubeError) -> str:
    """A short, bounded word for a failed Lease call (a metric label)."""
    if isinstance(error, KubeConflict):
        return "conflict"
    if isinstance(error, KubeForbidden):
        return "forbidden"
    if isinstance(error, KubeInvalid):
        return "invalid"
    return "unavailable"


class LeaseTrouble:
    """Failed Lease calls: logged loudly but not flooded, and how long the Lease has
    been out of reach."""

    def __init__(self, identity: str, timing: Timing, on_error: Callable[[str], None]) -> None:
        self.identity, self.timing, self.on_error = identity, timing, on_error
        self.last_ok = monotonic()
        self.last_error = ""
        self._failures = 0
        self._warned_at: float | None = None

    def succeeded(self) -> None:
        if self._failures:
            log.info(
                "lease calls succeed again identity=%s failures=%d", self.identity, self._failures
            )
        self.last_ok, self._failures, self._warned_at = monotonic(), 0, None

    def failed(self, error: KubeError) -> None:
        reason = error_reason(error)
        if reason == "conflict":  # another replica won the race: the normal case
            log.debug("lease attempt lost a race identity=%s error=%s", self.identity, error)
            self.succeeded()
            return
        self.on_error(reason)
        self._failures += 1
        self.last_error = f"{reason}: {error}"
        now = monotonic()
        if self._warned_at is None or now - self._warned_at >= self.timing.warn_every_seconds:
            self._warned_at = now
            log.warning(
                "cannot use the lease identity=%s reason=%s failures=%d error=%s",
                self.identity,
                reason,
                self._failures,
                error,
            )

    def problem(self) -> str | None:
        """Why this replica cannot take part in the election, once it has lasted."""
        out_of_reach = monotonic() - self.last_ok
        if self._failures and out_of_reach > self.timing.trouble_seconds:
            return f"the Lease is out of reach for {out_of_reach:.0f}s ({self.last_error})"
        return None


class Elector(threading.Thread):
    def __init__(
        self,
        lock: LeaseLock,
        *,
        identity: str,
        clock: Clock,
        on_started: Callable[[], None],
        on_stopped: Callable[[], None],
        on_error: Callable[[str], None] = lambda _reason: None,
        may_lead: Callable[[], str | None] = lambda: None,
        timing: Timing = Timing(),
    ) -> None:
        super().__init__(name="leader-election", daemon=True)
        self.lock, self.identity, self.clock, self.timing = lock, identity, clock, timing
        self.on_started, self.on_stopped = on_started, on_stopped
        self.trouble = LeaseTrouble(identity, timing, on_error)
        self.may_lead = may_lead  # None, or why this replica must not lead now
        self.last_activity = monotonic()  # for the liveness probe
        self._stop_requested = threading.Event()
        self._leading = threading.Event()
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    def stop(self) -> None:
        self._stop_requested.set()

    def run(self) -> None:
        while not self._stop_requested.is_set():
            if not self._acquire():
                continue
            self._leading.set()
            log.info("became leader identity=%s", self.identity)
            self.on_started()
            stepped_down = self._renew()
            self._leading.clear()
            if self._stop_requested.is_set() or stepped_down:
                self._release()
            log.info("stopped leading identity=%s", self.identity)
            self.on_stopped()

    def _wait(self, seconds: float) -> bool:
        """Wait; True when a stop was requested meanwhile."""
        self.last_activity = monotonic()
        return self._stop_requested.wait(seconds)

    def _acquire(self) -> bool:
        while not self._stop_requested.is_set():
            if self.may_lead() is None and self._try_acquire_or_renew():
                return True
            self._wait(self.timing.retry_period)
        return False

    def _renew(self) -> bool:
        """Renew every retry period until a renewal fails past the deadline or a stop;
        True when this leader steps down (it may not lead: the Lease is released)."""
        renewed = monotonic()
        while not self._wait(self.timing.retry_period):
            reason = self.may_lead()
            if reason is not None:
                log.warning("giving up the lease identity=%s reason=%s", self.identity, reason)
                return True
            if self._try_acquire_or_renew():
                renewed = monotonic()
            elif monotonic() - renewed > self.timing.renew_deadline:
                log.warning("could not renew the lease in time identity=%s", self.identity)
                return False
        return False

    def lease_problem(self) -> str | None:
        return self.trouble.problem()

    def _try_acquire_or_renew(self) -> bool:
        try:
            taken = self._acquire_or_renew_once()
        except KubeError as e:
            self.trouble.failed(e)
            return False
        self.trouble.succeeded()  # read (and written, if it was ours to take)
        return taken

    def _acquire_or_renew_once(self) -> bool:
        now = self.clock()
        current = self.lock.get()
        if current is None:
            self._observe(
                self.lock.create(LeaseRecord(self.identity, self._duration(), now, now, 0))
            )
            return True
        self._observe(current)
        if current.holder not in ("", self.identity) and self._valid(current):
            return False
        mine = current.holder == self.identity
        self._observe(
            self.lock.update(
                replace(
                    current,
                    holder=self.identity,
                    lease_duration_seconds=self._duration(),
                    renew_time=now,
                    acquire_time=current.acquire_time if mine else now,
                    transitions=current.transitions if mine else current.transitions + 1,
                )
            )
        )
        return True

    def _duration(self) -> int:
        return max(1, round(self.timing.lease_duration))

    def _observe(self, record: LeaseRecord) -> None:
        if record != self._observed:
            self._observed, self._observed_at = record, monotonic()

    def _valid(self, record: LeaseRecord) -> bool:
        """Whether another holder's lease is still running, by our own clock."""
        return monotonic() < self._observed_at + record.lease_duration_seconds

    def _release(self) -> None:
        """Clear the holder so that a standby takes over at once (client-go's
        ReleaseOnCancel)."""
        try:
            current = self.lock.get()
            if current is None or current.holder != self.identity:
                return
            now = self.clock()
            self.lock.update(replace(current, holder="", lease_duration_seconds=1, renew_time=now))
            log.info("released the lease identity=%s", self.identity)
        except KubeError as e:
            log.warning("could not release the lease identity=%s error=%s", self.identity, e)
