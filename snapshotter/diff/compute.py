"""compute_changes: the state + one batch of observations + `now` -> ChangeSet.

Each object in the batch is folded into its persisted row (newer state, accumulated
facts, final deletion and completion); only rows whose tracked columns differ from
the persisted ones (field by field, deepdiff) are written. Completions produce
workflow-run rows, new pools get their counts and a first history row, and runners
seen before their pool are attached once it appears. Nothing here reads a clock or
does I/O; the state is only read.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from snapshotter.diff import completion, counts, runner_sets, runners, runs
from snapshotter.diff.changes import ChangeSet, RowWrite
from snapshotter.diff.fields import changed_fields
from snapshotter.diff.mapping import Layered, RunnerSetIndex, with_counts
from snapshotter.diff.matching import CompiledConfig
from snapshotter.diff.observed import Input, Observed, Vanished
from snapshotter.diff.rows import (
    RunnerCounts,
    RunnerSetHistoryRow,
    RunnerSetRow,
    RunnerStateRow,
    Tally,
    WorkflowRunRow,
)
from snapshotter.diff.runner_kinds import ALL_LAUNCHERS, WORKER, RunnerKinds
from snapshotter.diff.state import MapDelta, StateDelta, SyncState, tally_of
from snapshotter.model.records import (
    EPHEMERAL_RUNNER_SETS,
    RUNNER_SETS,
    RUNNERS,
    EphemeralRunnerSetRecord,
    SetKey,
)
from snapshotter.model.versions import Version

RUNNER_SET_BOOKKEEPING = frozenset({"resource_version", "last_sync_at"})
RUNNER_BOOKKEEPING = frozenset({"resource_version", "first_seen_at", "last_seen_at"})


@dataclass(frozen=True, slots=True)
class DiffContext:
    cluster_name: str
    configs: tuple[CompiledConfig, ...] = ()
    runner_kinds: RunnerKinds = ALL_LAUNCHERS


@dataclass(slots=True)
class _Batch:
    """One resource's part of the batch, by uid."""

    observed: dict[str, Observed[Any]] = field(default_factory=dict)
    vanished: dict[str, Vanished] = field(default_factory=dict)

    def uids(self) -> list[str]:
        return [*self.observed, *(u for u in self.vanished if u not in self.observed)]


def _grouped(inputs: Iterable[Input]) -> dict[str, _Batch]:
    grouped: dict[str, _Batch] = defaultdict(_Batch)
    for item in inputs:
        batch = grouped[item.resource]
        if isinstance(item, Vanished):
            batch.vanished[item.uid] = item
        else:
            batch.observed[item.uid] = item
    return grouped


def _seq(state: SyncState, uid: str) -> int:
    return state.seqs.get(uid) or state.gone.seq(uid)


def _noted_seqs(batch: _Batch) -> dict[str, int]:
    """Arrival order of applied observations whose RV cannot be compared (fallback)."""
    return {uid: o.version.seq for uid, o in batch.observed.items() if not o.version.comparable}


def _created_before(a: RunnerStateRow, b: RunnerStateRow) -> bool:
    """Whether runner `a` was created before `b` (by their creationTimestamps; when
    those do not tell, the one already held counts as the older)."""
    if a.creation_timestamp is None or b.creation_timestamp is None:
        return False
    return a.creation_timestamp < b.creation_timestamp


def compute_changes(
    state: SyncState, inputs: Iterable[Input], *, context: DiffContext, now: datetime
) -> ChangeSet:
    grouped = _grouped(inputs)
    ers = _ephemeral_runner_sets(state, grouped[EPHEMERAL_RUNNER_SETS])
    ers_view = Layered(state.ephemeral_runner_sets, ers.put, frozenset(ers.gone))
    pools = _RunnerSetPass(state, context, now)
    pools.run(grouped[RUNNER_SETS])
    index = RunnerSetIndex(pools.active_view(), ers_view, pools.keys_view())
    runner_pass = _RunnerPass(state, index, context)
    runner_pass.run(grouped[RUNNERS])
    runner_pass.adopt_orphans(pools.new_keys)
    pools.count_new_pools(index, ers_view, runner_pass.tally_changes)
    seqs = {k: v for b in grouped.values() for k, v in _noted_seqs(b).items()}
    return ChangeSet(
        now=now,
        runner_sets=tuple(pools.writes),
        runners=tuple(runner_pass.writes),
        runs=tuple(runner_pass.runs),
        history=tuple(pools.history),
        finished=tuple(runner_pass.finished),
        delta=StateDelta(
            runner_sets=pools.delta(),
            runners=runner_pass.delta(),
            ephemeral_runner_sets=ers,
            written=pools.written,
            histories=pools.written,
            history_at=dict.fromkeys(pools.written, now),
            seqs=seqs,
        ),
        completed=runner_pass.completed,
        vanished=runner_pass.vanished,
        deleted=runner_pass.deleted,
        names_reused=runner_pass.names_reused,
    )


def _ephemeral_runner_sets(state: SyncState, batch: _Batch) -> MapDelta[EphemeralRunnerSetRecord]:
    """EphemeralRunnerSets are only held in memory (for desired counts)."""
    put: dict[str, EphemeralRunnerSetRecord] = {}
    gone: dict[str, EphemeralRunnerSetRecord] = {}
    for uid in batch.uids():
        previous = state.ephemeral_runner_sets.get(uid)
        observed, vanished = batch.observed.get(uid), batch.vanished.get(uid)
        if observed is not None:
            stored = (
                Version(previous.resource_version, _seq(state, uid))
                if previous
                else state.gone.get((EPHEMERAL_RUNNER_SETS, uid))
            )
            if observed.deleted_at is not None:
                if previous is not None:
                    gone[uid] = observed.record
                continue
            if isinstance(stored, Version) and not observed.version.newer_than(stored):
                continue
            put[uid] = observed.record
        elif vanished is not None and previous is not None:
            gone[uid] = previous
    return MapDelta(put=put, gone=gone)


@dataclass(slots=True)
class _RunnerSetPass:
    state: SyncState
    context: DiffContext
    now: datetime
    writes: list[RowWrite[RunnerSetRow]] = field(default_factory=list)
    history: list[RunnerSetHistoryRow] = field(default_factory=list)
    put: dict[str, RunnerSetRow] = field(default_factory=dict)
    gone: dict[str, RunnerSetRow] = field(default_factory=dict)
    new_keys: dict[SetKey, str] = field(default_factory=dict)  # pools new in this batch
    written: dict[str, Any] = field(default_factory=dict)

    def run(self, batch: _Batch) -> None:
        for uid in batch.uids():
            previous = self.state.runner_sets.get(uid) or self._tombstone(uid)
            row = runner_sets.next_row(
                previous,
                batch.observed.get(uid),
                batch.vanished.get(uid),
                previous_seq=_seq(self.state, uid),
                counts=RunnerCounts(),
                cluster_name=self.context.cluster_name,
                now=self.now,
            )
            self._record(previous, row)

    def _tombstone(self, uid: str) -> RunnerSetRow | None:
        gone = self.state.gone.get((RUNNER_SETS, uid))
        return gone if isinstance(gone, RunnerSetRow) else None

    def _record(self, previous: RunnerSetRow | None, row: RunnerSetRow) -> None:
        if previous is None:
            self.writes.append(RowWrite(row, new=True))
            if row.status == "active":
                self.new_keys[SetKey(row.namespace, row.name)] = row.uid
        elif changed_fields(previous, row, ignore=RUNNER_SET_BOOKKEEPING):
            row = replace(row, last_sync_at=self.now)
            self.writes.append(RowWrite(row, new=False))
        if row.status == "active":
            self.put[row.uid] = row
        else:
            self.gone[row.uid] = row

    def active_view(self) -> Mapping[str, RunnerSetRow]:
        return Layered(self.state.runner_sets, self.put, frozenset(self.gone))

    def keys_view(self) -> Mapping[SetKey, str]:
        gone_keys = frozenset(
            SetKey(r.namespace, r.name)
            for r in self.gone.values()
            if self.state.active_by_key.get(SetKey(r.namespace, r.name)) == r.uid
        )
        put = {SetKey(r.namespace, r.name): uid for uid, r in self.put.items()}
        return Layered(self.state.active_by_key, put, gone_keys)

    def count_new_pools(
        self,
        index: RunnerSetIndex,
        ers_view: Mapping[str, EphemeralRunnerSetRecord],
        tally_changes: Mapping[str, Tally],
    ) -> None:
        """A new pool's row carries its counts from the start, with a history row."""
        desired = counts.desired_by_pool(ers_view.values(), index)
        for i, write in enumerate(self.writes):
            row = write.row
            if not write.new or row.status != "active":
                continue
            tally = self.state.tallies.get(row.uid, Tally()) + tally_changes.get(row.uid, Tally())
            live = tally.counts(desired.get(row.uid, 0))
            row = with_counts(row, live)
            self.writes[i] = RowWrite(row, new=True)
            self.put[row.uid] = row
            self.written[row.uid] = live
            self.history.append(counts.history_row(row, now=self.now))

    def delta(self) -> MapDelta[RunnerSetRow]:
        return MapDelta(put=dict(self.put), gone=dict(self.gone))


@dataclass(slots=True)
class _RunnerPass:
    state: SyncState
    index: RunnerSetIndex
    context: DiffContext
    writes: list[RowWrite[RunnerStateRow]] = field(default_factory=list)
    put: dict[str, RunnerStateRow] = field(default_factory=dict)
    gone: dict[str, RunnerStateRow] = field(default_factory=dict)
    runs: list[WorkflowRunRow] = field(default_factory=list)
    finished: list[RunnerStateRow] = field(default_factory=list)
    tally_changes: dict[str, Tally] = field(default_factory=dict)
    names: dict[tuple[str, str], str] = field(default_factory=dict)  # batch's live names
    completed: int = 0
    vanished: int = 0
    deleted: int = 0
    names_reused: int = 0

    def run(self, batch: _Batch) -> None:
        for uid in batch.uids():
            previous = self._latest(uid)
            seen = runners.Seen(
                observed=batch.observed.get(uid),
                vanished=batch.vanished.get(uid),
                previous_seq=_seq(self.state, uid),
            )
            row = self._next(previous, seen)
            if seen.vanished is not None and previous is not None and not previous.is_deleted:
                self.vanished += 1
            superseded = False
            if previous is None and seen.observed is not None:
                row, superseded = self._take_name(row, seen.observed.first_received)
            self._record(previous, row, superseded=superseded)

    def _next(self, previous: RunnerStateRow | None, seen: runners.Seen) -> RunnerStateRow:
        return runners.next_row(
            previous, seen, index=self.index, cluster_name=self.context.cluster_name
        )

    def _tombstone(self, uid: str) -> RunnerStateRow | None:
        gone = self.state.gone.get((RUNNERS, uid))
        return gone if isinstance(gone, RunnerStateRow) else None

    def _latest(self, uid: str) -> RunnerStateRow | None:
        """The runner's row as this batch left it so far (another runner taking its
        name may have ended it), else as stored."""
        return (
            self.gone.get(uid)
            or self.put.get(uid)
            or self.state.runners.get(uid)
            or self._tombstone(uid)
        )

    def _holder(self, row: RunnerStateRow) -> RunnerStateRow | None:
        """The live runner that holds `row`'s name, if another one does."""
        key = (row.namespace, row.name)
        uid = self.names.get(key) if key in self.names else self.state.live_names.get(key)
        if uid is None or uid == row.uid:
            return None
        holder = self.put.get(uid) or self.state.runners.get(uid)
        return holder if holder is not None and not holder.is_deleted else None

    def _take_name(self, row: RunnerStateRow, at: datetime) -> tuple[RunnerStateRow, bool]:
        """A runner first seen with the name of a live one: Kubernetes names are
        unique among live objects, so the older of the two is gone (recorded as
        vanished now, before a table keyed by name gives its row to the newer)."""
        holder = self._holder(row)
        if holder is None:
            return row, False
        self.names_reused += 1
        if _created_before(row, holder):
            return self._vanish(row, at), True
        self._record(holder, self._vanish(holder, at))
        return row, False

    def _vanish(self, row: RunnerStateRow, at: datetime) -> RunnerStateRow:
        """`row` gone as of `at`: as if a list taken then, after its last observation,
        did not show it."""
        seq = _seq(self.state, row.uid)
        gone = Vanished(RUNNERS, row.uid, Version(row.resource_version, seq + 1), at)
        self.vanished += not row.is_deleted
        return self._next(row, runners.Seen(vanished=gone, previous_seq=seq))

    def adopt_orphans(self, new_keys: Mapping[SetKey, str]) -> None:
        """Attach live runners seen before their pool (watch streams are not ordered
        across resources) to the pool once it appears, as this batch left them; a
        runner this batch recorded as gone is not brought back."""
        if not new_keys:
            return
        for uid, runner in {**self.state.runners, **self.put}.items():
            if uid in self.gone or runner.runner_set_uid is not None:
                continue
            key = SetKey(runner.runner_set_namespace or "", runner.runner_set_name or "")
            if key in new_keys:
                self._record(runner, replace(runner, runner_set_uid=new_keys[key]))

    def _record(
        self, previous: RunnerStateRow | None, row: RunnerStateRow, *, superseded: bool = False
    ) -> None:
        if previous is not None and previous.is_deleted and row == previous:
            return  # an old observation of a runner already gone: nothing to say
        if previous is None:
            self._write(RowWrite(row, new=True, superseded=superseded))
        elif changed_fields(previous, row, ignore=RUNNER_BOOKKEEPING):
            self._write(RowWrite(row, new=False))
        self._count(previous, row)
        self._tally(previous, row)
        key = (row.namespace, row.name)
        if row.is_deleted:
            self.gone[row.uid] = row
            self.put.pop(row.uid, None)
            if self.names.get(key, self.state.live_names.get(key)) == row.uid:
                self.names[key] = ""
        else:
            self.put[row.uid] = row
            self.names[key] = row.uid

    def _write(self, write: RowWrite[RunnerStateRow]) -> None:
        """One write per runner: a runner recorded again in this batch (its name was
        taken) replaces its earlier write, which stays an insert if it was one."""
        for i, earlier in enumerate(self.writes):
            if earlier.row.uid == write.row.uid:
                self.writes[i] = RowWrite(write.row, earlier.new, earlier.superseded)
                return
        self.writes.append(write)

    def _count(self, previous: RunnerStateRow | None, row: RunnerStateRow) -> None:
        was_completed = previous is not None and previous.is_completed
        was_deleted = previous is not None and previous.is_deleted
        self.completed += row.is_completed and not was_completed
        self.deleted += row.is_deleted and not was_deleted
        if completion.runs_due(previous, row):
            self.finished.append(row)
            if self.context.runner_kinds.of(row.name) == WORKER:
                return  # a worker's job is its launcher's run (Lens makes no run row)
            self.runs.extend(
                runs.run_rows(row, self.context.configs, cluster_name=self.context.cluster_name)
            )

    def _tally(self, previous: RunnerStateRow | None, row: RunnerStateRow) -> None:
        before = tally_of(previous) if previous is not None else Tally()
        after = tally_of(row)
        if before == after and (previous is None or previous.runner_set_uid == row.runner_set_uid):
            return
        for pool, change in (
            (previous.runner_set_uid if previous else None, -before),
            (row.runner_set_uid, after),
        ):
            if pool is not None:
                self.tally_changes[pool] = self.tally_changes.get(pool, Tally()) + change

    def delta(self) -> MapDelta[RunnerStateRow]:
        return MapDelta(put=dict(self.put), gone=dict(self.gone))
