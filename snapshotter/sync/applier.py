"""The single writer's logic (SPEC §4.1, §4.4, §7): work from the queue -> diff ->
one transaction -> the in-memory state updated in place.

Ordering is by resourceVersion: each observation is compared with the version
persisted for its object, deleted objects keep their deletion's version as a
tombstone (in memory for recent ones, in the database for all; objects the state
does not know are looked up there first), and a complete list decides what
vanished by its own version. A poll list of a resource whose watch is live only
suspects an absent runner: the watch normally delivers its DELETED event (with its
last state) first, and once the watch has progressed past the list the suspect is
decided. When the database refuses the data of a batch, the batch is split until
the one bad object is isolated; that object is recorded as rejected and everything
else commits. Every call comes from the writer thread.
"""

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from snapshotter.clock import Clock, monotonic
from snapshotter.diff import compute, counts, matching
from snapshotter.diff.changes import ChangeSet, Cursor, RejectedObject
from snapshotter.diff.observed import Input, Observed, Vanished
from snapshotter.diff.rows import RunnerSetRow, RunnerStateRow
from snapshotter.diff.state import MapDelta, StateDelta, SyncState, apply_delta
from snapshotter.errors import StoreRejected
from snapshotter.model.records import RUNNER_SETS, RUNNERS, EphemeralRunnerRecord
from snapshotter.model.versions import Version, integer_rv
from snapshotter.ops.stats import SyncStats
from snapshotter.sync.ports import Store
from snapshotter.sync.queue import ListedStream, ListMarker, Work

log = logging.getLogger(__name__)

CommitHook = Callable[[Sequence[EphemeralRunnerRecord], SyncState], None]
CURSOR_SECONDS = 5.0  # watch progress reaches the cursor table at most this often


def stream_name(resource: str, namespace: str | None) -> str:
    """The cursor (and log) name of one list/watch scope."""
    return resource if namespace is None else f"{resource}/{namespace}"


@dataclass(slots=True)
class ApplyResult:
    """What transactions did, for logs, metrics and the `--once` summary."""

    written: dict[str, int] = field(default_factory=dict)
    summary: dict[str, int] = field(default_factory=dict)
    fitted: int = 0
    rejected: int = 0
    seconds: float = 0.0

    def add(self, changes: ChangeSet, written: dict[str, int], fitted: int) -> None:
        for key, n in written.items():
            self.written[key] = self.written.get(key, 0) + n
        for key, n in changes.summary().items():
            self.summary[key] = self.summary.get(key, 0) + n
        self.fitted += fitted

    def merge(self, other: "ApplyResult") -> None:
        for key, n in other.written.items():
            self.written[key] = self.written.get(key, 0) + n
        for key, n in other.summary.items():
            self.summary[key] = self.summary.get(key, 0) + n
        self.fitted += other.fitted
        self.rejected += other.rejected
        self.seconds += other.seconds

    @property
    def rows_written(self) -> int:
        return sum(n for k, n in self.written.items() if not k.startswith("snapshotter_"))


class WatchLiveness:
    """Which watch streams are delivering events now (set by the watchers)."""

    def __init__(self) -> None:
        self._live: set[str] = set()

    def set(self, stream: str, live: bool) -> None:
        if live:
            self._live.add(stream)
        else:
            self._live.discard(stream)

    def __contains__(self, stream: str) -> bool:
        return stream in self._live


class Applier:
    def __init__(
        self,
        store: Store,
        *,
        cluster_name: str,
        clock: Clock,
        stats: SyncStats | None = None,
        history_period: timedelta | None = None,
        on_commit: CommitHook | None = None,
    ) -> None:
        self.store = store
        self.cluster_name = cluster_name
        self.clock = clock
        self.stats = stats or SyncStats()
        self.history_period = history_period
        self.on_commit = on_commit
        self.state = SyncState()
        self.configs: tuple[matching.CompiledConfig, ...] = ()
        self.watches = WatchLiveness()
        self._config_errors: set[str] = set()
        self._rejected: set[tuple[str, str, str]] = set()
        self._suspects: dict[tuple[str, str], tuple[str, Vanished]] = {}  # -> (stream, ...)
        self._progress: dict[str, str] = {}  # stream -> applied watch resourceVersion
        self._cursors = _PendingCursors()
        self._noted_opaque = False

    # -- loading -------------------------------------------------------------------

    def load(self) -> None:
        """Load the persisted state (the ephemeral runner sets are not stored)."""
        ephemeral_runner_sets = self.state.ephemeral_runner_sets
        self.state = self.store.load_state()
        self.state.ephemeral_runner_sets.update(ephemeral_runner_sets)
        self._rejected = self.store.load_rejected()
        self.reload_configs()

    def reload_configs(self) -> None:
        compiled = tuple(matching.compile_config(c) for c in self.store.load_configs())
        for config in compiled:
            if config.error and config.error not in self._config_errors:
                log.error("workflow config ignored: %s", config.error)
                self._config_errors.add(config.error)
        self.configs = compiled

    def stored_version(self, resource: str, uid: str) -> str | None:
        """The resourceVersion the state holds for a live object (any thread may ask)."""
        row: Any
        if resource == RUNNERS:
            row = self.state.runners.get(uid)
        elif resource == RUNNER_SETS:
            row = self.state.runner_sets.get(uid)
        else:
            row = self.state.ephemeral_runner_sets.get(uid)
        return row.resource_version if row is not None else None

    # -- applying work -------------------------------------------------------------

    def apply(self, work: Work) -> ApplyResult:
        """Apply taken work (its objects and its due lists' absences) in one
        transaction, or several if the database refuses some of the data. Raises
        StoreUnavailable: the caller gives the work back (what committed before is
        idempotent to apply again)."""
        started = monotonic()
        result = ApplyResult()
        self._progress.update(work.progress)
        for name, rv in work.progress.items():
            self._cursors.note(Cursor(name, rv, full_resync=False))
        if work.markers:
            self.reload_configs()  # configs are re-read every cycle
        inputs: list[Input] = [o for o in work.objects if not self._refused_before(o)]
        for marker in work.markers:
            for stream in marker.streams:
                self._cursors.note(Cursor(stream.name, stream.resource_version, full_resync=True))
            # decided against the state before this work; the fold checks each absence
            # again against what the work's own objects say
            inputs += self._absent(marker)
        self._apply_inputs(inputs, result)
        self._decide_suspects(result)
        result.seconds = monotonic() - started
        for marker in work.markers:
            marker.result = result
        return result

    def _refused_before(self, obs: Observed[Any]) -> bool:
        return (obs.resource, obs.uid, obs.version.rv) in self._rejected

    def _apply_inputs(self, inputs: Sequence[Input], result: ApplyResult) -> None:
        if not inputs:
            return
        self._look_up_unknown(inputs)
        changes = compute.compute_changes(
            self.state,
            inputs,
            context=compute.DiffContext(self.cluster_name, self.configs),
            now=self.clock(),
        )
        self._write(changes, result, inputs)

    def _write(self, changes: ChangeSet, result: ApplyResult, inputs: Sequence[Input] = ()) -> None:
        """One transaction; the cursors ride along when rows are written (an idle
        cluster writes nothing at all)."""
        cursors = self._cursors.due() if changes.writes_rows else []
        try:
            written = self.store.apply(changes, cursors)
        except StoreRejected as e:
            if not inputs:
                raise
            self._split(inputs, result, e)
            return
        self._cursors.written(cursors)
        self._adopt(changes, inputs)
        result.add(changes, dict(written.rows), sum(written.fitted.values()))
        self.stats.committed(written.rows, written.fitted)

    def _split(self, inputs: Sequence[Input], result: ApplyResult, error: StoreRejected) -> None:
        """Halve a refused batch until the one bad object is isolated."""
        if len(inputs) == 1:
            self._reject(inputs[0], error, result)
            return
        middle = len(inputs) // 2
        self._apply_inputs(inputs[:middle], result)
        self._apply_inputs(inputs[middle:], result)

    def _reject(self, bad: Input, error: StoreRejected, result: ApplyResult) -> None:
        row = self._known(bad.resource, bad.uid)
        if isinstance(bad, Observed):
            ident = bad.record.identity
            namespace, name, rv = ident.namespace, ident.name, ident.resource_version
        else:
            namespace = getattr(row, "namespace", None)
            name = getattr(row, "name", None)
            rv = bad.listed.rv
        self.store.reject(
            RejectedObject(bad.resource, bad.uid, namespace, name, rv, str(error)), now=self.clock()
        )
        self._rejected.add((bad.resource, bad.uid, rv))
        result.rejected += 1
        self.stats.reject(bad.resource)
        log.error(
            "object rejected by the database, recorded in snapshotter_rejects "
            "kind=%s ref=%s/%s rv=%s error=%s",
            bad.resource,
            namespace,
            name,
            rv,
            error,
        )
        if isinstance(bad, Vanished) and row is not None:
            self._forget(bad.resource, row)

    def _forget(self, resource: str, row: RunnerStateRow | RunnerSetRow) -> None:
        """Drop a live object the database refuses to mark gone, so that it is not
        retried at every list (its row stays as it was)."""
        if isinstance(row, RunnerStateRow) and resource == RUNNERS:
            apply_delta(self.state, StateDelta(runners=MapDelta(gone={row.uid: row})))
        elif isinstance(row, RunnerSetRow):
            apply_delta(self.state, StateDelta(runner_sets=MapDelta(gone={row.uid: row})))

    def _known(self, resource: str, uid: str) -> RunnerStateRow | RunnerSetRow | None:
        if resource == RUNNERS:
            return self.state.runners.get(uid)
        if resource == RUNNER_SETS:
            return self.state.runner_sets.get(uid)
        return None

    def _look_up_unknown(self, inputs: Iterable[Input]) -> None:
        """Objects the state does not hold may be deleted ones (tombstones in the
        database): load them, so that an old observation cannot resurrect them."""
        unknown: dict[str, list[str]] = {RUNNERS: [], RUNNER_SETS: []}
        for item in inputs:
            if (
                item.resource in unknown
                and self._known(item.resource, item.uid) is None
                and item.key not in self.state.gone
            ):
                unknown[item.resource].append(item.uid)
        for resource, uids in unknown.items():
            if not uids:
                continue
            found = self.store.lookup(resource, uids)
            live_runners = {
                r.uid: r for r in found if isinstance(r, RunnerStateRow) and not r.is_deleted
            }
            live_sets = {
                r.uid: r for r in found if isinstance(r, RunnerSetRow) and r.status == "active"
            }
            for row in found:
                if row.uid not in live_runners and row.uid not in live_sets:
                    self.state.gone.put((resource, row.uid), row)
            apply_delta(
                self.state,
                StateDelta(runners=MapDelta(put=live_runners), runner_sets=MapDelta(put=live_sets)),
            )

    def _adopt(self, changes: ChangeSet, inputs: Sequence[Input]) -> None:
        apply_delta(self.state, changes.delta)
        self._note_opaque(inputs)
        now = self.clock()
        for item in inputs:
            if isinstance(item, Observed):
                self.stats.latency(max(0.0, (now - item.at).total_seconds()))
        for row in changes.finished:
            self.stats.job_finished(row)
        if self.on_commit is not None:
            runners = [
                i.record
                for i in inputs
                if isinstance(i, Observed) and isinstance(i.record, EphemeralRunnerRecord)
            ]
            if runners:
                self.on_commit(runners, self.state)

    def _note_opaque(self, inputs: Sequence[Input]) -> None:
        if self._noted_opaque:
            return
        for item in inputs:
            if isinstance(item, Observed) and not item.version.comparable:
                log.warning(
                    "resourceVersion is not an integer, ordering by arrival instead rv=%r",
                    item.version.rv,
                )
                self._noted_opaque = True
                return

    # -- complete lists --------------------------------------------------------------

    def _live(self, resource: str) -> dict[str, Any]:
        if resource == RUNNERS:
            return self.state.runners
        if resource == RUNNER_SETS:
            return self.state.runner_sets
        return self.state.ephemeral_runner_sets

    def _absent(self, marker: ListMarker) -> list[Vanished]:
        """Objects the lists do not show that were persisted before them: gone."""
        vanished: list[Vanished] = []
        for stream in marker.streams:
            listed = marker.version(stream)
            defer = not marker.from_watch and self._watch_is_ahead_of_list(stream) is False
            for uid in stream.seen:
                self._suspects.pop((stream.resource, uid), None)
            for uid, row in self._live(stream.resource).items():
                if uid in stream.seen or not self._in_scope(row, stream):
                    continue
                version = Version(row.resource_version, self.state.seqs.get(uid, 0))
                if not version.not_after(listed):
                    continue  # observed after the list began: its absence says nothing
                gone = Vanished(stream.resource, uid, listed, marker.at)
                key = (stream.resource, uid)
                if defer and key not in self._suspects:
                    self._suspects[key] = (stream.name, gone)
                    continue
                self._suspects.pop(key, None)
                vanished.append(gone)
        return vanished

    def _watch_is_ahead_of_list(self, stream: ListedStream) -> bool | None:
        """None: no live watch on this stream; else whether it has delivered
        everything up to the list's resourceVersion."""
        name = stream.name
        if name not in self.watches:
            return None
        progress = integer_rv(self._progress.get(name, ""))
        listed = integer_rv(stream.resource_version)
        return progress is not None and listed is not None and progress >= listed

    @staticmethod
    def _in_scope(row: Any, stream: ListedStream) -> bool:
        return stream.namespace is None or row.namespace == stream.namespace

    def _decide_suspects(self, result: ApplyResult) -> None:
        """A suspect is gone once its watch has delivered past the list that missed it
        (its DELETED event would have come first); newer news clears it."""
        if not self._suspects:
            return
        due: list[Vanished] = []
        for key, (stream, gone) in list(self._suspects.items()):
            row = self._live(gone.resource).get(gone.uid)
            seq = self.state.seqs.get(gone.uid, 0)
            version = Version(row.resource_version, seq) if row is not None else None
            if version is None or not version.not_after(gone.listed):
                del self._suspects[key]
                continue
            progress = integer_rv(self._progress.get(stream, ""))
            listed = integer_rv(gone.listed.rv)
            if progress is not None and listed is not None and progress >= listed:
                del self._suspects[key]
                due.append(gone)
        if due:
            self._apply_inputs(due, result)

    # -- periodic writes -----------------------------------------------------------

    def flush(self, *, force: bool = False) -> ApplyResult:
        """Pool counts and history rows that are due (all that moved when `force`)."""
        result = ApplyResult()
        changes = counts.counts_due(
            self.state, now=self.clock(), period=None if force else self.history_period
        )
        if changes.writes_rows:
            self._write(changes, result)
        return result


class _PendingCursors:
    """List and watch positions waiting for a transaction that writes rows: a
    complete list's at once, watch progress at most every CURSOR_SECONDS."""

    def __init__(self) -> None:
        self._pending: dict[str, Cursor] = {}
        self._written_at = monotonic()

    def note(self, cursor: Cursor) -> None:
        previous = self._pending.get(cursor.resource)
        full = cursor.full_resync or (previous is not None and previous.full_resync)
        self._pending[cursor.resource] = Cursor(cursor.resource, cursor.resource_version, full)

    def due(self) -> list[Cursor]:
        cursors = list(self._pending.values())
        if any(c.full_resync for c in cursors):
            return cursors
        return cursors if monotonic() - self._written_at >= CURSOR_SECONDS else []

    def written(self, cursors: Sequence[Cursor]) -> None:
        if cursors:
            for cursor in cursors:
                if self._pending.get(cursor.resource) == cursor:
                    del self._pending[cursor.resource]
            self._written_at = monotonic()
