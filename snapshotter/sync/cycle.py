"""One poll cycle: list every resource in every scope into the pending queue, then
wait (a bounded time) for the writer to apply it.

The lists' changed objects are queued as they are read, page by page; the cycle's
marker follows them, so the writer applies everything pending before it decides
what the lists no longer show. The poller never waits on a writer that cannot
write: past `wait` seconds the cycle ends and its marker stays queued.
"""

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from snapshotter.clock import monotonic
from snapshotter.kube import resources
from snapshotter.sync.applier import ApplyResult
from snapshotter.sync.intake import Intake
from snapshotter.sync.ports import Source
from snapshotter.sync.queue import ListMarker

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PollResult:
    listed: dict[str, int]  # stream -> objects listed
    versions: dict[str, str]  # stream -> list resourceVersion
    list_seconds: float
    seconds: float  # listing + applying (or waiting to)
    applied: ApplyResult | None  # None: not applied within the wait

    @property
    def rows_written(self) -> int:
        return self.applied.rows_written if self.applied else 0


def poll_once(
    source: Source,
    intake: Intake,
    *,
    namespaces: Sequence[str] = (),
    wait: float | None = None,
    stop: threading.Event | None = None,
    on_queued: Callable[[], None] | None = None,
) -> PollResult:
    """List everything, queue it, and wait up to `wait` seconds (None: until it is
    applied or `stop` is set) for it to be applied. Raises KubeError or QueueFull if
    the lists fail, and the writer's error if it gave up on them (`--once`).
    `on_queued` runs once everything is queued (e.g. to start the writer, so that a
    first list is applied in as few transactions as possible)."""
    started = monotonic()
    seq, at = intake.queue.next_seq(), intake.clock()
    scopes: Sequence[str | None] = namespaces or [None]
    streams = tuple(
        intake.list_stream(source, resource, scope, seq=seq, at=at)
        for resource in resources.ALL
        for scope in scopes
    )
    listed = monotonic()
    marker = ListMarker(streams, seq, at)
    intake.queue.put_marker(marker)
    if on_queued is not None:
        on_queued()
    _wait(marker, wait, stop)
    if marker.error is not None:
        raise marker.error
    result = PollResult(
        listed={s.name: s.items for s in streams},
        versions={s.name: s.resource_version for s in streams},
        list_seconds=listed - started,
        seconds=monotonic() - started,
        applied=marker.result if marker.done.is_set() else None,
    )
    _log(result)
    return result


def _wait(marker: ListMarker, wait: float | None, stop: threading.Event | None) -> None:
    deadline = None if wait is None else monotonic() + wait
    while not marker.done.wait(0.2):
        if (stop is not None and stop.is_set()) or (deadline and monotonic() > deadline):
            return


def _log(result: PollResult) -> None:
    applied = result.applied
    if applied is None:
        log.warning(
            "cycle listed, not applied yet (the writer is behind) listed=%d list_ms=%d",
            sum(result.listed.values()),
            result.list_seconds * 1000,
        )
        return
    changed = "".join(f" {k}={v}" for k, v in applied.summary.items() if v)
    log.info(
        "cycle done listed=%d%s rows_written=%d list_ms=%d total_ms=%d",
        sum(result.listed.values()),
        changed,
        applied.rows_written,
        result.list_seconds * 1000,
        result.seconds * 1000,
    )
