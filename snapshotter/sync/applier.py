"""The single writer's logic (SPEC §4.1, §4.4, §4.8, §7): work from the queue ->
diff -> one transaction -> the in-memory state updated in place.

Ordering is by resourceVersion: each observation is compared with the version
persisted for its object; deleted objects keep their deletion's version as a
tombstone (in memory for recent ones, in the database for all; objects the state
does not know are looked up there first); what a complete list says about the
objects it does not show is decided in `absences`. When the database refuses the
data of a batch, the batch is split until the one bad object is isolated; that
object is held as rejected (`outstanding`, and the rejects table) with everything
received about it, and everything else commits. A held object is written with its
next observation, or by a retry. Every call comes from the writer thread.
"""

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from snapshotter.clock import Clock, monotonic
from snapshotter.diff import compute, counts, matching
from snapshotter.diff.changes import (
    COUNTS_REFUSED,
    HISTORY_REFUSED,
    ChangeSet,
    Cursor,
    RejectedObject,
)
from snapshotter.diff.observed import Input, Observed, Vanished
from snapshotter.diff.rows import RunnerSetRow, RunnerStateRow
from snapshotter.diff.runner_kinds import ALL_LAUNCHERS, RunnerKinds
from snapshotter.diff.state import MapDelta, StateDelta, SyncState, apply_delta
from snapshotter.errors import StoreRejected
from snapshotter.model.records import RUNNER_SETS, RUNNERS, EphemeralRunnerRecord
from snapshotter.ops.stats import SyncStats
from snapshotter.sync import switchover
from snapshotter.sync.absences import Absences, WatchLiveness
from snapshotter.sync.bookkeeping import ApplyResult, PendingCursors, stream_name
from snapshotter.sync.outstanding import Outstanding
from snapshotter.sync.ports import Store, WriteResult
from snapshotter.sync.queue import Work

log = logging.getLogger(__name__)

__all__ = ["Applier", "ApplyResult", "WatchLiveness", "stream_name"]

CommitHook = Callable[[Sequence[EphemeralRunnerRecord], SyncState], None]


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
        runner_kinds: RunnerKinds = ALL_LAUNCHERS,
    ) -> None:
        self.store = store
        self.runner_kinds = runner_kinds
        self.cluster_name = cluster_name
        self.clock = clock
        self.stats = stats or SyncStats()
        self.history_period = history_period
        self.on_commit = on_commit
        self.state = SyncState()
        self.configs: tuple[matching.CompiledConfig, ...] = ()
        self.absences = Absences(self._live, lambda: self.state.seqs)
        self.outstanding = Outstanding()
        self._config_errors: set[str] = set()
        self._cursors = PendingCursors()
        self._noted_opaque = False

    @property
    def watches(self) -> WatchLiveness:
        return self.absences.watches

    # -- loading -------------------------------------------------------------------

    def load(self) -> None:
        """Load the persisted state (the ephemeral runner sets are not stored)."""
        ephemeral_runner_sets = self.state.ephemeral_runner_sets
        self.state = self.store.load_state()
        self.state.ephemeral_runner_sets.update(ephemeral_runner_sets)
        self.outstanding.load(self.store.load_rejects())
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
        row = self._live(resource).get(uid)
        return row.resource_version if row is not None else None

    def _live(self, resource: str) -> dict[str, Any]:
        if resource == RUNNERS:
            return self.state.runners
        if resource == RUNNER_SETS:
            return self.state.runner_sets
        return self.state.ephemeral_runner_sets

    # -- applying work -------------------------------------------------------------

    def apply(self, work: Work) -> ApplyResult:
        """Apply taken work (its objects, then its lists' absences, decided against
        the state those objects leave) in one transaction, or several if the database
        refuses some of the data. Raises StoreUnavailable: the caller gives the work
        back (what committed before is idempotent to apply again)."""
        saved = self.absences.checkpoint()
        try:
            return self._apply_work(work)
        except BaseException:
            self.absences.restore(saved)  # the work comes back: decide it again then
            raise

    def _apply_work(self, work: Work) -> ApplyResult:
        started = monotonic()
        result = ApplyResult()
        self.absences.progressed(work.progress)
        for name, rv in work.progress.items():
            self._cursors.note(Cursor(name, rv, full_resync=False))
        if work.markers:
            self.reload_configs()  # configs are re-read every cycle
        for marker in work.markers:  # the lists' positions ride with the first write
            for stream in marker.streams:
                self._cursors.note(Cursor(stream.name, stream.resource_version, full_resync=True))
        inputs: list[Input] = [o for o in work.objects if not self.outstanding.no_news(o)]
        arriving = {o.key: o for o in work.objects}
        for marker in work.markers:
            # the fold checks each absence again against what the objects say
            inputs += self.absences.absent(marker, arriving)
        self._apply_inputs(inputs, result)
        self._apply_inputs(self.absences.due(), result)
        for marker in work.markers:
            began = self.clock()
            settled = switchover.settle_after(self.store, marker, now=began)
            if settled:
                self.stats.committed(settled, {}, began=began)
            for key, n in settled.items():
                result.written[key] = result.written.get(key, 0) + n
        result.seconds = monotonic() - started
        for marker in work.markers:
            marker.result = result
        return result

    def retry_rejected(self) -> ApplyResult:
        """Write again what the database refused (start-up, periodic, on request)."""
        result = ApplyResult()
        held = self.outstanding.replayable()
        counts_refused = [k for k in self.outstanding.without_payload() if k[0] in _RECOMPUTED]
        if held or counts_refused:
            log.info(
                "retrying rejected objects objects=%d counts=%d", len(held), len(counts_refused)
            )
        for resource, uid in counts_refused:
            if resource == COUNTS_REFUSED:
                self.state.written.pop(uid, None)  # the next flush writes its counts
        if counts_refused:
            self._commit_and_adopt(
                ChangeSet(now=self.clock(), resolved=tuple(counts_refused)), [], result
            )
        self._apply_inputs(held, result)
        return result

    def _apply_inputs(self, inputs: Sequence[Input], result: ApplyResult) -> None:
        self._apply_groups(self.outstanding.with_held(inputs), result)

    def _apply_groups(self, groups: list[list[Input]], result: ApplyResult) -> None:
        """Apply objects' inputs in one transaction; halve the batch while the
        database refuses its data, until the one bad object is isolated."""
        if not groups:
            return
        inputs = [i for group in groups for i in group]
        self._look_up_unknown(inputs)
        changes = compute.compute_changes(
            self.state,
            inputs,
            context=compute.DiffContext(self.cluster_name, self.configs, self.runner_kinds),
            now=self.clock(),
        )
        changes = replace(changes, resolved=self.outstanding.resolved_by(inputs))
        try:
            self._commit_and_adopt(changes, inputs, result)
        except StoreRejected as e:
            if len(groups) == 1:
                self._reject(groups[0], e, result)
                return
            middle = len(groups) // 2
            self._apply_groups(groups[:middle], result)
            self._apply_groups(groups[middle:], result)

    def _commit_and_adopt(
        self, changes: ChangeSet, inputs: Sequence[Input], result: ApplyResult
    ) -> None:
        """One transaction; the cursors ride along when rows are written (an idle
        cluster writes nothing at all)."""
        cursors = self._cursors.due() if changes.writes_rows else []
        began = self.clock()
        written = self.store.apply(changes, cursors)
        self._cursors.written(cursors)
        apply_delta(self.state, _without_refused_history(changes.delta, written))
        self.outstanding.committed(changes.resolved)
        self._adopted(changes, inputs, written, began)
        result.add(changes, dict(written.rows), sum(written.fitted.values()))
        result.rejected += len(written.refused)

    def _adopted(
        self,
        changes: ChangeSet,
        inputs: Sequence[Input],
        written: WriteResult,
        began: datetime,
    ) -> None:
        self.stats.committed(written.rows, written.fitted, began=began)
        for refused in written.refused:
            self.outstanding.refused_without_payload((refused.resource, refused.uid))
            self.stats.reject(refused.resource)
            log.error(
                "history row refused by the database, recorded in snapshotter_rejects "
                "pool=%s error=%s",
                refused.uid,
                refused.error,
            )
        self._note_opaque(inputs)
        now = self.clock()
        for item in inputs:
            if isinstance(item, Observed):
                self.stats.latency(max(0.0, (now - item.at).total_seconds()))
        for row in changes.finished:
            self.stats.job_finished(row)
        if changes.names_reused:
            log.info(
                "runner names taken by new runners; their runners recorded as gone n=%d",
                changes.names_reused,
            )
        if self.on_commit is not None:
            runners = [
                i.record
                for i in inputs
                if isinstance(i, Observed) and isinstance(i.record, EphemeralRunnerRecord)
            ]
            if runners:
                self.on_commit(runners, self.state)

    def _reject(self, group: list[Input], error: StoreRejected, result: ApplyResult) -> None:
        first = group[0]
        row = self._live(first.resource).get(first.uid)
        observed = next((i for i in group if isinstance(i, Observed)), None)
        if observed is not None:
            ident = observed.record.identity
            namespace, name, rv = ident.namespace, ident.name, ident.resource_version
        else:
            namespace = getattr(row, "namespace", None)
            name = getattr(row, "name", None)
            rv = next(i.listed.rv for i in group if isinstance(i, Vanished))
        rejected = RejectedObject(first.resource, first.uid, namespace, name, rv, str(error))
        self.store.reject(rejected, payload=group, now=self.clock())
        self.outstanding.refused(group)
        result.rejected += 1
        self.stats.reject(first.resource)
        log.error(
            "object rejected by the database, held in snapshotter_rejects until it can be "
            "written kind=%s ref=%s/%s rv=%s error=%s",
            first.resource,
            namespace,
            name,
            rv,
            error,
        )
        if row is not None and any(isinstance(i, Vanished) for i in group):
            self._forget(first.resource, row)

    def _forget(self, resource: str, row: RunnerStateRow | RunnerSetRow) -> None:
        """A live object the database refuses to mark gone leaves the state (so that
        every list does not try again); its row stays, and so does its refusal."""
        if isinstance(row, RunnerStateRow) and resource == RUNNERS:
            apply_delta(self.state, StateDelta(runners=MapDelta(gone={row.uid: row})))
        elif isinstance(row, RunnerSetRow):
            apply_delta(self.state, StateDelta(runner_sets=MapDelta(gone={row.uid: row})))

    def _look_up_unknown(self, inputs: Iterable[Input]) -> None:
        """Objects the state does not hold may be deleted ones (tombstones in the
        database): load them, so that an old observation cannot resurrect them."""
        unknown: dict[str, list[str]] = {RUNNERS: [], RUNNER_SETS: []}
        for item in inputs:
            if (
                item.resource in unknown
                and item.uid not in self._live(item.resource)
                and item.key not in self.state.gone
            ):
                unknown[item.resource].append(item.uid)
        for resource, uids in unknown.items():
            if uids:
                self._adopt_found(resource, self.store.lookup(resource, uids))

    def _adopt_found(self, resource: str, found: Sequence[RunnerSetRow | RunnerStateRow]) -> None:
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

    # -- periodic writes -----------------------------------------------------------

    def flush(self, *, force: bool = False) -> ApplyResult:
        """Pool counts and history rows that are due (all that moved when `force`).
        A pool whose counts the database refuses is recorded and skipped until its
        counts change or a retry."""
        result = ApplyResult()
        changes = counts.counts_due(
            self.state, now=self.clock(), period=None if force else self.history_period
        )
        if not changes.writes_rows:
            return result
        try:
            self._commit_and_adopt(changes, [], result)
        except StoreRejected:
            for pool in counts.by_pool(changes):
                self._flush_pool(pool, result)
        return result

    def _flush_pool(self, changes: ChangeSet, result: ApplyResult) -> None:
        try:
            self._commit_and_adopt(changes, [], result)
        except StoreRejected as e:
            write = changes.runner_sets[0]
            self.state.written[write.row.uid] = write.row.counts  # skipped until they move
            self.outstanding.refused_without_payload((COUNTS_REFUSED, write.row.uid))
            refused = RejectedObject(
                COUNTS_REFUSED,
                write.row.uid,
                write.row.namespace,
                write.row.name,
                write.row.resource_version,
                str(e),
            )
            self.store.reject(refused, payload=(), now=self.clock())
            result.rejected += 1
            self.stats.reject(COUNTS_REFUSED)
            log.error(
                "pool counts refused by the database, recorded in snapshotter_rejects "
                "pool=%s/%s error=%s",
                write.row.namespace,
                write.row.name,
                e,
            )


_RECOMPUTED = (COUNTS_REFUSED, HISTORY_REFUSED)  # nothing to replay: computed again


def _without_refused_history(delta: StateDelta, written: WriteResult) -> StateDelta:
    """The delta, except history rows the database refused: still owed."""
    refused = {r.uid for r in written.refused if r.resource == HISTORY_REFUSED}
    if not refused:
        return delta
    histories = {uid: c for uid, c in delta.histories.items() if uid not in refused}
    return replace(delta, histories=histories)
