"""compute_changes: persisted state + one observation + `now` -> ChangeSet.

Only objects whose resourceVersion changed are mapped; each mapped row is compared
field by field with its persisted row, and only differing columns are written.
Completions found on the way produce workflow-run rows, and pools whose derived
counts moved get an update and a history row. Nothing here reads a clock or does I/O.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from snapshotter.diff import completion, counts, mapping, runs
from snapshotter.diff.changes import ChangeSet, MirrorDelta, RowUpdate, StateDelta, TableChanges
from snapshotter.diff.fields import changed_fields
from snapshotter.diff.matching import CompiledConfig
from snapshotter.diff.rows import (
    RunnerCounts,
    RunnerSetHistoryRow,
    RunnerSetRow,
    RunnerStateRow,
    WorkflowRunRow,
)
from snapshotter.diff.state import Observation, Observed, PersistedState
from snapshotter.model.records import (
    EphemeralRunnerRecord,
    EphemeralRunnerSetRecord,
    RunAnnotations,
    RunnerSetRecord,
)

RUNNER_SET_BOOKKEEPING = frozenset({"resource_version", "last_sync_at"})
RUNNER_BOOKKEEPING = frozenset({"resource_version", "first_seen_at", "last_seen_at"})


@dataclass(frozen=True, slots=True)
class DiffContext:
    cluster_name: str
    configs: tuple[CompiledConfig, ...] = ()


def compute_changes(
    state: PersistedState,
    observation: Observation,
    *,
    context: DiffContext,
    now: datetime,
) -> ChangeSet:
    ers_delta = _ephemeral_runner_sets(state.ephemeral_runner_sets, observation)
    ers_after = ers_delta.applied_to(state.ephemeral_runner_sets)
    set_rows, set_removals = _observed_runner_sets(
        state.runner_sets, observation.runner_sets, context=context, now=now
    )
    index = mapping.RunnerSetIndex.build({**state.runner_sets, **set_rows}, ers_after)
    runner_pass = _RunnerPass(state.runners, index=index, context=context, now=now)
    runner_pass.run(observation.runners)
    runner_pass.adopt_orphans(set(set_rows) - set(state.runner_sets))
    runners_after = runner_pass.delta().applied_to(state.runners)
    pool_counts = counts.runner_counts(runners_after.values(), ers_after, index)
    sets = _RunnerSetPass(state.runner_sets, context=context, now=now)
    sets.run(set_rows, set_removals, pool_counts)
    return ChangeSet(
        now=now,
        runner_sets=sets.changes(),
        runners=runner_pass.changes(),
        runs=tuple(runner_pass.runs),
        history=tuple(sets.history),
        delta=StateDelta(sets.delta(), runner_pass.delta(), ers_delta),
        completed=runner_pass.completed,
        vanished=runner_pass.vanished,
        deleted=runner_pass.deleted,
    )


def _ephemeral_runner_sets(
    persisted: Mapping[str, EphemeralRunnerSetRecord], observation: Observation
) -> MirrorDelta[EphemeralRunnerSetRecord]:
    observed = observation.ephemeral_runner_sets
    gone = set(observed.deleted) | set(observed.absent_from(persisted))
    return MirrorDelta(upserts=dict(observed.changed), removals=frozenset(gone))


def _observed_runner_sets(
    persisted: Mapping[str, RunnerSetRow],
    observed: Observed[RunnerSetRecord],
    *,
    context: DiffContext,
    now: datetime,
) -> tuple[dict[str, RunnerSetRow], frozenset[str]]:
    """New rows for every runner set the observation says something about."""

    def row_of(record: RunnerSetRecord) -> RunnerSetRow:
        previous = persisted.get(record.identity.uid)
        return mapping.runner_set_row(
            record, previous=previous, cluster_name=context.cluster_name, now=now
        )

    rows = {
        uid: row_of(record)
        for uid, record in observed.changed.items()
        if uid not in persisted
        or persisted[uid].resource_version != record.identity.resource_version
    }
    for uid, record in observed.deleted.items():
        rows[uid] = mapping.marked_deleted(row_of(record), now=now)
    absent = observed.absent_from(persisted)
    for uid in absent:
        rows[uid] = mapping.marked_deleted(persisted[uid], now=now)
    return rows, frozenset(observed.deleted) | frozenset(absent)


@dataclass(slots=True)
class _RunnerSetPass:
    persisted: Mapping[str, RunnerSetRow]
    context: DiffContext
    now: datetime
    inserts: list[RunnerSetRow] = field(default_factory=list)
    updates: list[RowUpdate] = field(default_factory=list)
    upserts: dict[str, RunnerSetRow] = field(default_factory=dict)
    removals: frozenset[str] = frozenset()
    history: list[RunnerSetHistoryRow] = field(default_factory=list)

    def run(
        self,
        rows: Mapping[str, RunnerSetRow],
        removals: frozenset[str],
        pool_counts: Mapping[str, RunnerCounts],
    ) -> None:
        self.removals = removals
        for uid in rows.keys() | self.persisted.keys():
            row = rows.get(uid) or self.persisted[uid]
            if row.status == "active":
                row = mapping.with_counts(row, pool_counts.get(uid, RunnerCounts()))
            elif uid not in rows:
                continue  # a deleted pool still terminating: counts stay as they were
            self._record(self.persisted.get(uid), row)

    def _record(self, previous: RunnerSetRow | None, row: RunnerSetRow) -> None:
        counts_moved = previous is None or previous.counts != row.counts
        if previous is None:
            row = replace(row, last_sync_at=self.now)
            self.inserts.append(row)
        elif previous == row:
            return
        elif changed := changed_fields(previous, row, ignore=RUNNER_SET_BOOKKEEPING):
            row = replace(row, last_sync_at=self.now)
            bookkeeping = {"resource_version": row.resource_version, "last_sync_at": self.now}
            self.updates.append(RowUpdate(row.uid, {**changed, **bookkeeping}))
        if row.uid not in self.removals:
            self.upserts[row.uid] = row
        if counts_moved and row.status == "active":
            self.history.append(self._history_row(row))

    def _history_row(self, row: RunnerSetRow) -> RunnerSetHistoryRow:
        return RunnerSetHistoryRow(
            runner_set_uid=row.uid,
            cluster_name=self.context.cluster_name,
            observed_at=self.now,
            current_runners=row.current_runners,
            pending_runners=row.pending_runners,
            running_runners=row.running_runners,
            failed_runners=row.failed_runners,
            busy_runners=row.busy_runners,
            desired_runners=row.desired_runners,
        )

    def changes(self) -> TableChanges[RunnerSetRow]:
        return TableChanges(tuple(self.inserts), tuple(self.updates))

    def delta(self) -> MirrorDelta[RunnerSetRow]:
        return MirrorDelta(dict(self.upserts), self.removals)


@dataclass(slots=True)
class _RunnerPass:
    persisted: Mapping[str, RunnerStateRow]
    index: mapping.RunnerSetIndex
    context: DiffContext
    now: datetime
    inserts: list[RunnerStateRow] = field(default_factory=list)
    updates: list[RowUpdate] = field(default_factory=list)
    upserts: dict[str, RunnerStateRow] = field(default_factory=dict)
    removals: set[str] = field(default_factory=set)
    runs: list[WorkflowRunRow] = field(default_factory=list)
    completed: int = 0
    vanished: int = 0
    deleted: int = 0

    def run(self, observed: Observed[EphemeralRunnerRecord]) -> None:
        for record in observed.changed.values():
            self._observe(record, gone=None)
        for record in observed.deleted.values():
            self._observe(record, gone="deleted")
        for uid in observed.absent_from(self.persisted):
            self.vanished += 1
            self._settle(self.persisted[uid], RunAnnotations(), gone="vanished")

    def adopt_orphans(self, new_set_uids: set[str]) -> None:
        """Attach runners seen before their pool (watch streams are not ordered across
        resources) to the pool once it appears."""
        keys = {
            (row.namespace, row.name): uid
            for uid in new_set_uids
            if (row := self.index.runner_sets[uid]).status == "active"
        }
        if not keys:
            return
        touched = self.upserts.keys() | self.removals
        for uid, runner in self.persisted.items():
            key = (runner.runner_set_namespace, runner.runner_set_name)
            if runner.runner_set_uid is None and key in keys and uid not in touched:
                self._settle(replace(runner, runner_set_uid=keys[key]), RunAnnotations(), gone=None)

    def _observe(self, record: EphemeralRunnerRecord, *, gone: completion.Gone) -> None:
        previous = self.persisted.get(record.identity.uid)
        if (
            gone is None
            and previous
            and previous.resource_version == record.identity.resource_version
        ):
            return  # this very version is already persisted
        row = mapping.runner_state_row(
            record,
            previous=previous,
            index=self.index,
            cluster_name=self.context.cluster_name,
            now=self.now,
        )
        self._settle(row, record.annotations, gone=gone)

    def _settle(
        self, row: RunnerStateRow, annotations: RunAnnotations, *, gone: completion.Gone
    ) -> None:
        previous = self.persisted.get(row.uid)
        if not row.is_completed:
            done = completion.completion_of(row, gone=gone, now=self.now)
            if done is not None:
                row = replace(
                    row,
                    is_completed=True,
                    completed_at=done.completed_at,
                    completion_source=done.source,
                )
                self._completed(row, annotations)
        if gone is not None:
            self.deleted += 1
            row = replace(row, is_deleted=True, last_seen_at=self.now)
        self._record(previous, row)

    def _completed(self, row: RunnerStateRow, annotations: RunAnnotations) -> None:
        self.completed += 1
        if completion.ran_a_job(row):
            self.runs.extend(
                runs.run_rows(
                    row, annotations, self.context.configs, cluster_name=self.context.cluster_name
                )
            )

    def _record(self, previous: RunnerStateRow | None, row: RunnerStateRow) -> None:
        if previous is None:
            self.inserts.append(row)
        elif changed := changed_fields(previous, row, ignore=RUNNER_BOOKKEEPING):
            bookkeeping = {"resource_version": row.resource_version, "last_seen_at": self.now}
            self.updates.append(RowUpdate(row.uid, {**changed, **bookkeeping}))
        else:
            # Nothing tracked changed: remember the new resourceVersion, write nothing.
            row = replace(previous, resource_version=row.resource_version)
        if row.is_deleted:
            self.removals.add(row.uid)
        else:
            self.upserts[row.uid] = row

    def changes(self) -> TableChanges[RunnerStateRow]:
        return TableChanges(tuple(self.inserts), tuple(self.updates))

    def delta(self) -> MirrorDelta[RunnerStateRow]:
        return MirrorDelta(dict(self.upserts), frozenset(self.removals))
