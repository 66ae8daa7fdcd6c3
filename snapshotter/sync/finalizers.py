"""Optional finalizer capture (SPEC §4.6): no finished job lost, even across downtime.

With capture on, every live EphemeralRunner carries our finalizer. ARC deletes a
finished runner, but the API server keeps the object (with its deletionTimestamp
and last status) until every finalizer is gone, so a daemon that was down sees it
when it returns. The finalizer is removed only after the runner's final state is
committed. It never holds a runner hostage: a clean shutdown, and the command
`snapshotter finalizers remove`, remove it from every runner.

Patches are JSON patches guarded by `test` operations on the finalizer list, so a
concurrent change by ARC fails the patch (422: a test failed) instead of being
overwritten; the next observation of the runner retries, and a release pass lists
again. They run on a worker thread, never on the writer thread.
"""

import logging
import queue
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from snapshotter.diff.state import SyncState
from snapshotter.errors import KubeConflict, KubeError, KubeNotFound
from snapshotter.kube import resources
from snapshotter.kube.client import Listing
from snapshotter.kube.resources import Resource
from snapshotter.model.records import EphemeralRunnerRecord
from snapshotter.ops.stats import SyncStats

log = logging.getLogger(__name__)

FINALIZER = "snapshotter.primus-lens.amd.com/run-capture"
RawObject = Mapping[str, Any]


class Patcher(Protocol):
    def list_all(self, resource: Resource, namespace: str | None = None) -> Listing: ...

    def json_patch(
        self, resource: Resource, namespace: str, name: str, operations: list[dict[str, Any]]
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class _Task:
    action: Literal["add", "remove"]
    namespace: str
    name: str
    uid: str
    finalizers: tuple[str, ...]  # the list the patch expects to find


def add_operations(finalizers: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {"op": "test", "path": "/metadata/finalizers", "value": list(finalizers)},
        {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
    ]


def remove_operations(finalizers: Sequence[str]) -> list[dict[str, Any]]:
    index = list(finalizers).index(FINALIZER)
    path = f"/metadata/finalizers/{index}"
    return [{"op": "test", "path": path, "value": FINALIZER}, {"op": "remove", "path": path}]


def _finalizers(meta: RawObject) -> tuple[str, ...] | None:
    value = meta.get("finalizers")
    if value is None:
        return None
    return tuple(f for f in value if isinstance(f, str)) if isinstance(value, list) else None


def task_for(runner: EphemeralRunnerRecord, state: SyncState) -> _Task | None:
    """What our finalizer on this runner needs, given what is committed."""
    ident = runner.identity
    finalizers = runner.finalizers
    if finalizers is None:
        return None  # ARC sets its own finalizers at creation; wait until it has
    if runner.deletion_timestamp is not None:
        committed = state.runners.get(ident.uid)
        final_state_stored = committed is None or (
            committed.resource_version == ident.resource_version
        )
        if FINALIZER in finalizers and final_state_stored:
            return _Task("remove", ident.namespace, ident.name, ident.uid, finalizers)
        return None  # no new finalizer can be added to an object being deleted
    if FINALIZER not in finalizers:
        return _Task("add", ident.namespace, ident.name, ident.uid, finalizers)
    return None


class FinalizerKeeper:
    def __init__(self, patcher: Patcher, *, stats: SyncStats, queue_size: int = 10_000) -> None:
        self.patcher = patcher
        self.stats = stats
        self._tasks: queue.Queue[_Task | None] = queue.Queue(maxsize=queue_size)
        self._queued: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="finalizers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def on_commit(self, runners: Sequence[EphemeralRunnerRecord], state: SyncState) -> None:
        """Called by the writer after each commit with the runners it observed."""
        for runner in runners:
            task = task_for(runner, state)
            if task is None:
                continue
            key = (task.uid, task.action)
            with self._lock:
                if key in self._queued:
                    continue
                self._queued.add(key)
            try:
                self._tasks.put_nowait(task)
            except queue.Full:
                with self._lock:
                    self._queued.discard(key)  # the next list or event retries it

    def _work(self) -> None:
        while (task := self._tasks.get()) is not None:
            with self._lock:
                self._queued.discard((task.uid, task.action))
            self._patch(task)

    def _patch(self, task: _Task) -> None:
        ops = (
            add_operations(task.finalizers)
            if task.action == "add"
            else (remove_operations(task.finalizers))
        )
        try:
            self.patcher.json_patch(resources.EPHEMERAL_RUNNERS, task.namespace, task.name, ops)
        except (KubeConflict, KubeNotFound):
            pass  # changed or gone meanwhile; its next observation decides again
        except KubeError as e:
            self.stats.error("finalizer")
            log.warning(
                "finalizer %s failed runner=%s/%s error=%s",
                task.action,
                task.namespace,
                task.name,
                e,
            )
        else:
            self.stats.finalizer_patched(task.action)

    def close(self) -> None:
        """Finish queued patches, then stop the worker."""
        self._tasks.put(None)
        if self._thread.is_alive():
            self._thread.join()


RELEASE_PASSES = 5


def release_all(patcher: Patcher, namespaces: Iterable[str | None]) -> int:
    """Remove our finalizer from every EphemeralRunner that carries it; returns how many.

    A runner that changed between list and patch is retried in the next pass."""
    released, conflicts = 0, 0
    scopes = list(namespaces)
    for _ in range(RELEASE_PASSES):
        conflicts = 0
        for namespace in scopes:
            for raw in patcher.list_all(resources.EPHEMERAL_RUNNERS, namespace).items:
                try:
                    released += _release(patcher, raw)
                except KubeConflict:
                    conflicts += 1
        if not conflicts:
            return released
    raise KubeConflict(f"runners kept changing; {conflicts} still carry {FINALIZER}")


def _release(patcher: Patcher, raw: RawObject) -> int:
    meta = raw.get("metadata") or {}
    finalizers = _finalizers(meta) or ()
    if FINALIZER not in finalizers:
        return 0
    try:
        patcher.json_patch(
            resources.EPHEMERAL_RUNNERS,
            meta["namespace"],
            meta["name"],
            remove_operations(finalizers),
        )
    except KubeNotFound:
        return 0
    return 1
