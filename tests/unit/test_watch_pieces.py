"""Pieces of the watch loop that need no server: event decoding, backoff, finalizers."""

import random
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from snapshotter.diff.state import SyncState
from snapshotter.errors import KubeConflict, KubeUnavailable, ResourceVersionExpired
from snapshotter.kube.errors import error_from
from snapshotter.kube.watch import _decode
from snapshotter.model import parse
from snapshotter.sync.backoff import Backoff
from snapshotter.sync.finalizers import (
    FINALIZER,
    add_operations,
    remove_operations,
    task_for,
)
from tests.support import arc_objects as arc
from tests.support.observing import runner_events
from tests.support.scenario import T1, diff, loaded


def test_bookmark_carries_only_a_resource_version() -> None:
    event = _decode(
        b'{"type":"BOOKMARK","object":{"kind":"EphemeralRunner",'
        b'"metadata":{"resourceVersion":"12345"}}}',
        "watch x",
    )
    assert event is not None
    assert (event.type, event.resource_version) == ("BOOKMARK", "12345")


def test_error_410_means_relist() -> None:
    line = (
        b'{"type":"ERROR","object":{"kind":"Status","code":410,'
        b'"reason":"Expired","message":"too old resource version: 5 (900)"}}'
    )
    with pytest.raises(ResourceVersionExpired, match="too old resource version"):
        _decode(line, "watch ephemeralrunners")


def test_too_large_resource_version_means_relist() -> None:
    line = (
        b'{"type":"ERROR","object":{"kind":"Status","code":504,"reason":"Timeout",'
        b'"message":"Too large resource version: 900, current: 800"}}'
    )
    with pytest.raises(ResourceVersionExpired, match="Too large"):
        _decode(line, "watch ephemeralrunners")
    answer = ApiException(status=504, reason="Timeout")
    answer.body = '{"message":"Too large resource version: 900, current: 800"}'
    assert isinstance(error_from(answer), ResourceVersionExpired)


def test_a_failed_patch_test_operation_is_a_conflict() -> None:
    """The API server answers a failed JSON-patch `test` with 422, not 409."""
    answer = ApiException(status=422, reason="Unprocessable Entity")
    assert isinstance(error_from(answer, invalid_is_conflict=True), KubeConflict)
    assert isinstance(error_from(answer), KubeUnavailable)


def test_other_error_events_are_retried() -> None:
    with pytest.raises(KubeUnavailable, match="error event 500"):
        _decode(b'{"type":"ERROR","object":{"code":500,"message":"boom"}}', "watch x")


def test_unknown_event_types_are_skipped() -> None:
    assert _decode(b'{"type":"SYNC","object":{}}', "watch x") is None


def test_undecodable_line_breaks_the_stream() -> None:
    with pytest.raises(KubeUnavailable, match="undecodable"):
        _decode(b'{"type": "ADDED", "obj', "watch x")


def test_backoff_grows_with_jitter_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(initial=0.8, maximum=30.0, rng=random.Random(7))
    delays = [backoff.next() for _ in range(8)]
    steps = [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0]
    assert all(step <= d <= min(30.0, 2 * step) for d, step in zip(delays, steps, strict=True))
    backoff.reset()
    assert backoff.next() <= 1.6


def record(raw: dict[str, Any]) -> Any:
    return parse.parse_ephemeral_runner(raw).record


def test_finalizer_is_added_to_live_runners_only(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    task = task_for(record(cluster["idle"]), state)
    assert task is not None
    assert task.action == "add"
    held = arc.merged(
        cluster["idle"],
        {"metadata": {"finalizers": [*cluster["idle"]["metadata"]["finalizers"], FINALIZER]}},
    )
    assert task_for(record(held), state) is None


def test_finalizer_is_removed_only_once_the_final_state_is_committed(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    deleting = arc.bumped(
        cluster["busy"],
        "500",
        metadata={"deletionTimestamp": "2026-11-28T10:00:07Z", "finalizers": [FINALIZER]},
    )
    assert task_for(record(deleting), state) is None  # version 500 is not stored yet
    _, after = diff(state, runner_events(T1, changed=[deleting]), T1)
    task = task_for(record(deleting), after)
    assert task is not None
    assert task.action == "remove"


def test_no_finalizer_is_added_to_a_runner_being_deleted(cluster: dict[str, Any]) -> None:
    deleting = arc.bumped(
        cluster["idle"], "600", metadata={"deletionTimestamp": "2026-11-28T10:00:07Z"}
    )
    assert task_for(record(deleting), SyncState()) is None


def test_runner_without_finalizers_yet_is_left_alone(cluster: dict[str, Any]) -> None:
    bare = arc.merged(cluster["idle"], {"metadata": {"finalizers": None}})
    assert task_for(record(bare), SyncState()) is None


def test_patches_are_guarded_by_test_operations() -> None:
    current = ["ephemeralrunner.actions.github.com/finalizer", FINALIZER]
    assert remove_operations(current) == [
        {"op": "test", "path": "/metadata/finalizers/1", "value": FINALIZER},
        {"op": "remove", "path": "/metadata/finalizers/1"},
    ]
    assert add_operations(current[:1])[0] == {
        "op": "test",
        "path": "/metadata/finalizers",
        "value": current[:1],
    }
