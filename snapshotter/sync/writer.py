"""Runs every Applier call on one dedicated thread, so that there is one writer.

Callers on other threads (the scheduler's job, the watchers) submit and wait; the
calls run one at a time, in submission order.
"""

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from snapshotter.kube.client import Listing
from snapshotter.sync.applier import Applier, ApplyResult

T = TypeVar("T")


class SerialWriter:
    def __init__(self, applier: Applier) -> None:
        self.applier = applier
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="applier")

    @property
    def position(self) -> int:
        return self.applier.position

    def call(self, fn: Callable[[], T]) -> T:
        return self._executor.submit(fn).result()

    def apply_listings(self, listings: Sequence[Listing], *, since: int) -> ApplyResult:
        return self.call(lambda: self.applier.apply_listings(listings, since=since))

    def close(self) -> None:
        """Finish what was submitted, then stop the thread."""
        self._executor.shutdown(wait=True)
