"""The daemon's sync engine on a real database, driven step by step from the test.

The same parts the daemon wires (store, applier, pending queue, intake, writer),
without threads: the test hands over lists and events, then lets the writer work
with `drain()`. Kubernetes is replaced by in-memory `Source`s (our own port).
"""

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from snapshotter.clock import Clock
from snapshotter.db.store import Store
from snapshotter.db.upserts import Statements
from snapshotter.diff.observed import Observed
from snapshotter.diff.runner_kinds import ALL_LAUNCHERS, RunnerKinds
from snapshotter.kube import resources
from snapshotter.kube.resources import Resource
from snapshotter.sync.applier import Applier, ApplyResult
from snapshotter.sync.intake import Intake, QueueFull
from snapshotter.sync.observations import ParseReport, observe
from snapshotter.sync.ports import Source
from snapshotter.sync.queue import ListMarker, PendingQueue
from snapshotter.sync.writer import Writer

# Called for each list item that is queued: (its observation, the raw object).
Offer = Callable[[Observed[Any], Any], bool]


class SteppedIntake(Intake):
    """An Intake whose lists, when the queue is full, let the writer make room the way
    the daemon's writer does while a list is read (`make_room`: one drain, False
    when the writer cannot write); `offer` sees every item queued."""

    make_room: Callable[[], bool] | None = None
    offer: Offer | None = None

    def _enqueue(self, resource: Resource, body: Any, *, seq: int, at: datetime) -> None:
        obs = observe(resource.plural, body, at=at, seq=seq, report=self.report)
        if obs is None:
            return
        offer = self.offer or (lambda o, _b: self.queue.offer(o))
        while not offer(obs, body):
            if self.make_room is None or not self.make_room():
                raise QueueFull(f"no room for {resource.plural} in the pending queue")


class Harness:
    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock,
        cluster_name: str = "",
        batch_max: int = 500,
        cap: int = 10_000,
        history_period: timedelta | None = None,
        retry_outages: bool = True,
        runner_kinds: RunnerKinds = ALL_LAUNCHERS,
        collection_tasks: bool = False,
        store_timeout: float = 30,
        shape: Statements | None = None,
    ) -> None:
        self.clock = clock
        self.store = Store(
            engine,
            cluster_name=cluster_name,
            timeout=store_timeout,
            runner_kinds=runner_kinds,
            collection_tasks=collection_tasks,
            shape=shape,
        )
        self.applier = Applier(
            self.store,
            cluster_name=cluster_name,
            clock=clock,
            history_period=history_period,
            runner_kinds=runner_kinds,
        )
        self.queue = PendingQueue(cap=cap)
        self.report = ParseReport()
        # A list finding the queue full fails at once (the daemon's poll waits a
        # while), unless the test lets the writer make room (`SteppedIntake`).
        self.intake = SteppedIntake(
            self.queue, self.applier.stored_version, self.report, clock, room_timeout=0
        )
        self.writer = Writer(
            self.applier,
            self.queue,
            batch_max=batch_max,
            probe_seconds=0,
            retry_outages=retry_outages,
            reject_retry_seconds=None,  # the tests say when rejects are retried
            flush_seconds=0,  # counts at every step: the same steps, the same rows
        )
        self.applier.load()

    def begin_list(self) -> tuple[int, datetime]:
        return self.queue.next_seq(), self.clock()

    def hand_list(
        self,
        source: Source,
        *,
        token: tuple[int, datetime] | None = None,
        kinds: Sequence[Resource] = resources.ALL,
        namespaces: Sequence[str | None] = (None,),
        from_watch: bool = False,
    ) -> ListMarker:
        """Queue a complete list (taken at `token`, default: now) and its marker."""
        seq, at = token or self.begin_list()
        streams = tuple(
            self.intake.list_stream(source, kind, namespace, seq=seq, at=at)
            for kind in kinds
            for namespace in namespaces
        )
        marker = ListMarker(streams, seq, at, from_watch=from_watch)
        self.queue.put_marker(marker)
        return marker

    def event(
        self, kind: str, obj: dict[str, Any], resource: Resource = resources.EPHEMERAL_RUNNERS
    ) -> bool:
        """A watch event is received; False when the full queue refused it (the watch
        then relists)."""
        if not self.intake.event(resource, kind, obj):
            return False
        self.queue.note_progress(resource.plural, obj["metadata"]["resourceVersion"])
        return True

    def drain(self, attempts: int = 5) -> None:
        """The writer does all the work it can: it goes on while there is work and a
        failed transaction or probe is followed by a successful one (a few tries)."""
        failed = 0
        while failed < attempts and self.writer.failed is None:
            if self.writer.step():
                failed = 0
            elif self.queue.wait_for_work(0):
                failed += 1
            else:
                return

    def poll(self, source: Source, **kwargs: Any) -> ApplyResult:
        """A poll cycle: list, apply, and raise what the writer gave up with."""
        marker = self.hand_list(source, **kwargs)
        self.drain()
        if marker.error is not None:
            raise marker.error
        assert marker.done.is_set(), "the list was not applied"
        result: ApplyResult = marker.result
        result.merge(self.applier.flush(force=True))
        return result

    def close(self) -> None:
        self.store.close()
