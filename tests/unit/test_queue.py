"""The pending queue (sync/queue.py): one entry per object in its place in line, the
cap in objects, lists and progress due only after what was queued before them, and a
failed transaction's work given back at the front."""

import threading
from typing import Any

import pytest

from snapshotter.clock import monotonic
from snapshotter.diff.observed import Observed
from snapshotter.model.records import RUNNERS
from snapshotter.model.versions import Version
from snapshotter.sync.queue import (
    FIRST_SEQ,
    ListedStream,
    ListMarker,
    PendingQueue,
    StandingBy,
    Work,
)
from tests.support.scenario import T0, T1, T2


def seen(uid: str, rv: str, at: Any = T0) -> Observed[str]:
    return Observed(RUNNERS, uid, f"{uid} at {rv}", Version(rv, int(rv)), at)


def marker() -> ListMarker:
    return ListMarker((ListedStream(RUNNERS, None, "100", frozenset()),), seq=FIRST_SEQ, at=T0)


def records(work: Work) -> list[str]:
    return [o.record for o in work.objects]


def test_a_new_observation_of_a_pending_object_merges_into_its_place_in_line() -> None:
    queue = PendingQueue()
    for obs in (seen("a", "5"), seen("b", "6"), seen("a", "7")):
        assert queue.offer(obs)
    assert len(queue) == 2
    assert queue.pending_keys() == {(RUNNERS, "a"), (RUNNERS, "b")}
    assert records(queue.take(10)) == ["a at 7", "b at 6"]
    assert len(queue) == 0


def test_a_full_queue_refuses_new_objects_but_still_merges_pending_ones() -> None:
    queue = PendingQueue(cap=1)
    assert queue.offer(seen("a", "5"))
    assert not queue.offer(seen("b", "6"))
    assert not queue.put(seen("b", "6"), timeout=0.01)
    assert queue.offer(seen("a", "7"))
    assert queue.put(seen("a", "8"), timeout=0.01)
    assert records(queue.take(10)) == ["a at 8"]
    assert queue.put(seen("b", "6"), timeout=0.01)  # room again


def test_take_returns_at_most_the_objects_asked_for_from_the_front() -> None:
    queue = PendingQueue()
    for uid, rv in (("a", "5"), ("b", "6"), ("c", "7")):
        queue.offer(seen(uid, rv))
    assert records(queue.take(2)) == ["a at 5", "b at 6"]
    assert records(queue.take(2)) == ["c at 7"]
    assert not queue.take(2)


def test_a_list_is_due_once_everything_queued_before_it_was_taken() -> None:
    queue = PendingQueue()
    listed = marker()
    queue.offer(seen("a", "5"))
    queue.offer(seen("b", "6"))
    queue.put_marker(listed)
    queue.offer(seen("c", "7"))
    first = queue.take(1)
    assert (records(first), first.markers) == (["a at 5"], [])
    second = queue.take(10)  # stops at the list: c arrived after it
    assert (records(second), second.markers) == (["b at 6"], [listed])
    assert records(queue.take(10)) == ["c at 7"]


def test_progress_is_due_once_everything_queued_before_it_was_taken() -> None:
    queue = PendingQueue()
    queue.offer(seen("a", "5"))
    queue.note_progress("runners", "10")
    queue.offer(seen("b", "6"))
    queue.note_progress("runners", "11")  # a newer note takes the later place
    first = queue.take(1)
    assert (records(first), first.progress) == (["a at 5"], {})
    second = queue.take(1)
    assert (records(second), second.progress) == (["b at 6"], {"runners": "11"})


def test_progress_queued_before_any_object_is_due_at_once() -> None:
    queue = PendingQueue()
    queue.note_progress("runners", "10")
    queue.offer(seen("a", "5"))
    work = queue.take(0)
    assert (work.objects, work.progress) == ([], {"runners": "10"})
    assert bool(work)


def test_work_given_back_goes_first_merged_with_what_arrived_meanwhile() -> None:
    queue = PendingQueue()
    listed = marker()
    queue.offer(seen("a", "5", at=T1))
    queue.offer(seen("b", "6"))
    queue.put_marker(listed)
    queue.note_progress("runners", "9")
    work = queue.take(10)
    assert (records(work), work.markers, work.progress) == (
        ["a at 5", "b at 6"],
        [listed],
        {"runners": "9"},
    )
    queue.offer(seen("c", "8"))
    queue.offer(seen("a", "7", at=T2))
    queue.give_back(work)
    again = queue.take(10)
    assert records(again) == ["a at 7", "b at 6"]  # c came after the list
    assert again.objects[0].first_received == T1
    assert (again.markers, again.progress) == ([listed], {"runners": "9"})
    assert records(queue.take(10)) == ["c at 8"]


def test_progress_noted_meanwhile_wins_over_progress_given_back() -> None:
    queue = PendingQueue()
    queue.note_progress("runners", "9")
    work = queue.take(10)
    queue.note_progress("runners", "12")
    queue.give_back(work)
    assert queue.take(10).progress == {"runners": "12"}


def test_lists_given_back_keep_their_order_with_lists_queued_meanwhile() -> None:
    queue = PendingQueue()
    older, newer = marker(), marker()
    queue.put_marker(older)
    work = queue.take(10)
    queue.put_marker(newer)
    queue.give_back(work)
    assert queue.take(10).markers == [older, newer]


def test_a_standby_forgets_old_objects_and_fails_its_lists() -> None:
    queue = PendingQueue()
    listed = marker()
    queue.offer(seen("old", "5", at=T0))
    queue.offer(seen("recent", "6", at=T1))
    queue.put_marker(listed)
    queue.note_progress("runners", "9")
    assert queue.drop_older_than(T1) == 1
    assert queue.pending_keys() == {(RUNNERS, "recent")}
    assert listed.done.is_set()
    assert isinstance(listed.error, StandingBy)
    work = queue.take(10)
    assert (records(work), work.markers, work.progress) == (["recent at 6"], [], {})


def test_abandoned_lists_finish_with_the_error() -> None:
    queue = PendingQueue()
    listed, error = marker(), RuntimeError("database gone")
    queue.abandon([listed], error)
    assert listed.done.is_set()
    assert (listed.result, listed.error) == (None, error)


def test_put_waits_for_the_room_a_take_makes() -> None:
    queue = PendingQueue(cap=1)
    queue.offer(seen("a", "5"))
    taker = threading.Timer(0.2, queue.take, args=(10,))
    taker.start()
    try:
        assert queue.put(seen("b", "6"), timeout=30)
    finally:
        taker.join()
    assert records(queue.take(10)) == ["b at 6"]


@pytest.mark.parametrize("pending", ["object", "list", "progress"])
def test_waiting_for_work_returns_at_once_when_there_is_some(pending: str) -> None:
    queue = PendingQueue()
    if pending == "object":
        queue.offer(seen("a", "5"))
    elif pending == "list":
        queue.put_marker(marker())
    else:
        queue.note_progress("runners", "9")
    started = monotonic()
    assert queue.wait_for_work(30)
    assert monotonic() - started < 10


def test_given_back_progress_stays_behind_the_objects_queued_before_it() -> None:
    queue = PendingQueue()
    queue.offer(seen("a", "5"))
    queue.offer(seen("b", "6"))
    queue.note_progress("runners", "9")
    queue.give_back(queue.take(10))
    first = queue.take(1)
    assert (records(first), first.progress) == (["a at 5"], {})
    assert queue.take(1).progress == {"runners": "9"}


def test_waiting_for_work_tells_whether_there_is_any() -> None:
    queue = PendingQueue()
    assert not queue.wait_for_work(0.01)
    queue.note_progress("runners", "9")
    assert queue.wait_for_work(0.01)
    queue.take(10)
    queue.put_marker(marker())
    assert queue.wait_for_work(0.01)
    queue.take(10)
    queue.offer(seen("a", "5"))
    assert queue.wait_for_work(0.01)


def test_arrival_order_starts_after_what_earlier_processes_kept() -> None:
    queue = PendingQueue()
    assert [queue.next_seq() for _ in range(3)] == [FIRST_SEQ, FIRST_SEQ + 1, FIRST_SEQ + 2]


def test_a_stream_is_named_by_its_resource_and_namespace() -> None:
    assert ListedStream(RUNNERS, None, "1", frozenset()).name == RUNNERS
    assert ListedStream(RUNNERS, "arc", "1", frozenset()).name == f"{RUNNERS}/arc"
    listed = marker()
    assert listed.version(listed.streams[0]) == Version("100", FIRST_SEQ)
