"""A producer waiting for room in the pending queue waits its whole timeout, also
when that is under a second."""

import threading

from snapshotter.diff.observed import Observed
from snapshotter.model.records import RUNNERS
from snapshotter.model.versions import Version
from snapshotter.sync.queue import PendingQueue
from tests.support.scenario import T0


def seen(uid: str, rv: str) -> Observed[str]:
    return Observed(RUNNERS, uid, f"{uid} at {rv}", Version(rv, int(rv)), T0)


def test_put_with_less_than_a_second_left_still_waits_for_room() -> None:
    queue = PendingQueue(cap=1)
    queue.offer(seen("a", "5"))
    taker = threading.Timer(0.05, queue.take, args=(10,))
    taker.start()
    try:
        assert queue.put(seen("b", "6"), timeout=0.9)
    finally:
        taker.join()
    assert [o.record for o in queue.take(10).objects] == ["b at 6"]
