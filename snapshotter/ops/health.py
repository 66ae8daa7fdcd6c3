"""Whether the daemon is alive (`/healthz`) and doing its job (`/readyz`).

Alive: every loop thread exists and has gone round recently. Each loop stamps its
`last_activity` when it iterates; the limits allow for the longest legitimate wait
(a database call up to its deadline, a watch read up to its read timeout). A wedged
loop fails the probe and the kubelet restarts the container.

Ready: started, the database answered recently (a commit, or the writer's idle
probe), and Kubernetes too: the leader (or the only replica) has applied its
start-up reconciliation and polled within a few intervals; a standby is ready when
its watches are live and it can read and write the Lease (a replica refused the Lease
by RBAC or an invalid name would otherwise look ready and never write).
"""

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from snapshotter.clock import monotonic


class WriterView(Protocol):
    """What health reads of the writer."""

    @property
    def database_available(self) -> bool: ...

    @property
    def last_success(self) -> float: ...

    @property
    def last_activity(self) -> float: ...

    @property
    def leading(self) -> bool: ...

    def is_alive(self) -> bool: ...


class Liveness(Protocol):
    """Which watch streams are delivering events now."""

    def __contains__(self, stream: str) -> bool: ...


class Loop(Protocol):
    """A watcher or the elector: a thread that stamps its activity."""

    @property
    def name(self) -> str: ...

    @property
    def last_activity(self) -> float: ...

    def is_alive(self) -> bool: ...


class Election(Loop, Protocol):
    """The elector: a loop that also knows whether it can use the Lease."""

    def lease_problem(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class HealthLimits:
    writer_seconds: float
    watch_seconds: float
    elector_seconds: float
    database_seconds: float
    poll_seconds: float

    @classmethod
    def of(cls, *, interval: float, database_timeout: float, read_timeout: float) -> "HealthLimits":
        deadline = 2 * database_timeout  # the limit of one database call
        return cls(
            writer_seconds=deadline + 30,
            watch_seconds=read_timeout + 60,
            elector_seconds=60,
            database_seconds=interval + deadline + 15,
            poll_seconds=3 * interval + deadline,
        )


@dataclass
class Health:
    writer: WriterView
    watchers: Sequence[Loop]
    liveness: Liveness
    schedule_running: Callable[[], bool]
    elector: Election | None
    limits: HealthLimits
    started: bool = False
    synced: bool = False  # the start-up reconciliation was applied
    _last_list: float = field(default_factory=monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def listed(self) -> None:
        with self._lock:
            self._last_list = monotonic()

    def dead_threads(self) -> list[str]:
        dead = [w.name for w in self.watchers if not w.is_alive()]
        if self.started and not self.writer.is_alive():
            dead.append("writer")
        if self.elector is not None and self.started and not self.elector.is_alive():
            dead.append(self.elector.name)
        return dead

    def problems(self) -> list[str]:
        """What makes the process unhealthy (liveness)."""
        now = monotonic()
        problems = [f"thread {name} is not running" for name in self.dead_threads()]
        if self.started and now - self.writer.last_activity > self.limits.writer_seconds:
            problems.append(f"the writer loop is stuck for {now - self.writer.last_activity:.0f}s")
        problems.extend(
            f"{loop.name} is stuck for {now - loop.last_activity:.0f}s"
            for loop in self.watchers
            if now - loop.last_activity > self.limits.watch_seconds
        )
        if (
            self.elector is not None
            and now - self.elector.last_activity > self.limits.elector_seconds
        ):
            problems.append("leader election is stuck")
        if self.started and not self.schedule_running():
            problems.append("the poll schedule is not running")
        return problems

    def readiness(self) -> list[str]:
        """What keeps the daemon from doing its job (readiness)."""
        if not self.started:
            return ["starting"]
        now = monotonic()
        problems = []
        lease_problem = self.elector.lease_problem() if self.elector is not None else None
        if lease_problem is not None:  # a replica that can never lead is not ready
            problems.append(lease_problem)
        if not self.writer.database_available:
            problems.append("the database does not answer")
        elif now - self.writer.last_success > self.limits.database_seconds:
            problems.append(
                f"no answer from the database for {now - self.writer.last_success:.0f}s"
            )
        if self.elector is None or self.writer.leading:
            if not self.synced:
                problems.append("the start-up reconciliation is not applied yet")
            with self._lock:
                since = now - self._last_list
            if since > self.limits.poll_seconds:
                problems.append(f"no successful list of the ARC resources for {since:.0f}s")
        else:
            cold = [
                w.name for w in self.watchers if w.name.removeprefix("watch-") not in self.liveness
            ]
            if cold:
                problems.append(f"watches not live yet: {', '.join(cold)}")
        return problems
