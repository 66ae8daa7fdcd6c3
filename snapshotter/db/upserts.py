"""The statements of one transaction: a ChangeSet's rows, in dependency order.

Rows are upserted whole, and the upsert itself keeps facts final (SPEC §4.4): a
deletion, a completion, a job's fields and the time they were first seen are
never replaced once set, and run rows are never rewritten, so no ordering mistake
elsewhere can erase a recorded job. Every value is fitted to its column first
(`fitting`). A history row the database refuses is recorded and skipped, inside
its own savepoint, so that one refused count never holds back the rows around it.
Tables keyed by name as well as by uid (`names`) get a runner's end before its
name goes to a new uid.
"""

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Table, case, func, or_, select

from snapshotter.db import lens_tasks, names, rejects, tables
from snapshotter.db.errors import classified
from snapshotter.db.fitting import TableFitter
from snapshotter.db.live import ZERO_TIME_BEFORE, LiveTable
from snapshotter.db.reads import RUNNER_COLUMNS, RUNNER_SET_COLUMNS
from snapshotter.diff.changes import HISTORY_REFUSED, ChangeSet, Cursor, RejectedObject, RowWrite
from snapshotter.diff.rows import RunnerSetRow, RunnerStateRow, WorkflowRunRow, column_names
from snapshotter.diff.runner_kinds import ALL_LAUNCHERS, RunnerKinds
from snapshotter.errors import StoreRejected

log = logging.getLogger(__name__)

RUNNER_SETS_TABLE: Table = tables.RunnerSet.__table__  # type: ignore[assignment]
RUNNERS_TABLE: Table = tables.RunnerState.__table__  # type: ignore[assignment]
RUNS: Table = tables.WorkflowRun.__table__  # type: ignore[assignment]
HISTORY: Table = tables.RunnerSetHistory.__table__  # type: ignore[assignment]
CURSORS: Table = tables.SyncCursor.__table__  # type: ignore[assignment]
REJECTS: Table = tables.Reject.__table__  # type: ignore[assignment]
# The tables this module writes, fitted to their columns as the database has them.
WRITTEN = (RUNNER_SETS_TABLE, RUNNERS_TABLE, RUNS, HISTORY, CURSORS, REJECTS)
# Lens's own runner-state columns, filled from the snapshotter's (README, "Using an
# existing Primus Lens database").
LENS_RUNNER_COLUMNS = ("repository", "completion_time", "deletion_time", "runner_type")
# What Lens's tasks need of an inserted run (lens_tasks.RunLink).
RUN_LINK = tuple(
    RUNS.c[c] for c in ("id", "runner_set_id", "config_id", "workload_name", "github_run_id")
)
# Columns the upsert never replaces once they hold a value (SPEC §4.4).
RUNNER_FACTS = (
    "job_id",
    "job_request_id",
    "job_repository",
    "job_workflow_ref",
    "job_workflow_run_id",
    "job_display_name",
    "github_run_id",
    "github_run_number",
    "github_job_id",
    "head_sha",
    "head_branch",
    "workflow_name",
    "job_assigned_at",
    "creation_timestamp",
    "deletion_timestamp",
)

RUNNER_RESOURCES = ("resource_requests", "resource_limits")


@dataclass(slots=True)
class WriteCounts:
    """Rows written by one transaction, per table and kind, and values fitted."""

    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    fitted: Counter[str] = field(default_factory=Counter)  # "table.column" -> values changed
    refused: list[RejectedObject] = field(default_factory=list)  # history rows skipped

    def add(self, table: str, kind: str, n: int) -> None:
        if n:
            self.rows[f"{table}.{kind}"] += n

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def _unknown(column: Any, live: LiveTable) -> Any:
    """The stored value means "not known yet": NULL, Lens's zero, or Go's zero time."""
    if column.name in live.zeros:
        return or_(column.is_(None), column == live.zeros[column.name])
    if isinstance(column.type, DateTime):
        return or_(column.is_(None), column < ZERO_TIME_BEFORE)
    return column.is_(None)


class Statements:
    """The write statements, built once per store for the tables as they are:
    constructing an upsert (its `excluded` column collection) costs more than
    executing it."""

    def __init__(
        self,
        insert: Any,
        live: dict[str, LiveTable],
        *,
        runner_kinds: RunnerKinds = ALL_LAUNCHERS,
        collection_tasks: bool = False,
    ) -> None:
        self.insert = insert
        self.live = live
        self.runner_kinds = runner_kinds
        self.collection_tasks = collection_tasks  # Lens's tasks and summaries (lens_tasks)
        self.fitters = {n: TableFitter(t.table, zeros=t.zeros) for n, t in live.items()}
        self.runner_sets = self._runner_set_upsert()
        self.runners = self._runner_upsert(live[RUNNERS_TABLE.name])
        self.free_names = (
            names.free_statement(RUNNERS_TABLE) if live[RUNNERS_TABLE.name].name_key else None
        )
        # Any unique key may already hold the run (ours, or Lens's): skip, never fail.
        self.runs = insert(RUNS).on_conflict_do_nothing().returning(*RUN_LINK)
        self.runs_keyed_by_runner = ("runner_set_id", "workload_uid") in live[RUNS.name].keys
        self.history = insert(HISTORY)
        self.rejects = insert(REJECTS)
        cursor = insert(CURSORS)
        self.cursors = cursor.on_conflict_do_update(
            index_elements=["cluster_name", "resource"],
            set_={
                "resource_version": cursor.excluded.resource_version,
                "last_full_resync_at": func.coalesce(
                    cursor.excluded.last_full_resync_at, CURSORS.c.last_full_resync_at
                ),
                "updated_at": cursor.excluded.updated_at,
            },
        )

    def _runner_set_upsert(self) -> Any:
        stmt = self.insert(RUNNER_SETS_TABLE)
        t, ex = RUNNER_SETS_TABLE.c, stmt.excluded
        columns = (*RUNNER_SET_COLUMNS, "updated_at")
        values = {c: ex[c] for c in columns if c != "uid"}
        values["status"] = case((t.status == "deleted", t.status), else_=ex.status)
        values["deleted_at"] = func.coalesce(t.deleted_at, ex.deleted_at)
        return stmt.on_conflict_do_update(index_elements=["uid"], set_=values).returning(
            t.uid, t.id
        )

    def _runner_upsert(self, live: LiveTable) -> Any:
        stmt = self.insert(RUNNERS_TABLE)
        t, ex = RUNNERS_TABLE.c, stmt.excluded
        columns = (*RUNNER_COLUMNS, *LENS_RUNNER_COLUMNS, "runner_set_id", "updated_at")
        values = {c: ex[c] for c in columns if c not in ("uid", "first_seen_at")}
        for fact in (*RUNNER_FACTS, "repository", "deletion_time"):
            values[fact] = case((_unknown(t[fact], live), ex[fact]), else_=t[fact])
        for column in RUNNER_RESOURCES:  # a template read once stays known
            values[column] = func.coalesce(ex[column], t[column])
        values["is_deleted"] = or_(t.is_deleted, ex.is_deleted)
        values["is_completed"] = or_(t.is_completed, ex.is_completed)
        for column in ("completed_at", "completion_time", "completion_source"):
            values[column] = case((t.is_completed, t[column]), else_=ex[column])
        return stmt.on_conflict_do_update(
            index_elements=["uid"],
            index_where=(t.uid != "") if live.uid_key_partial else None,
            set_=values,
        )

    def fit(self, table: Table, values: dict[str, Any], counts: WriteCounts) -> dict[str, Any]:
        fitted, changes = self.fitters[table.name].fit(values)
        for change in changes:
            counts.fitted[f"{table.name}.{change.column}"] += 1
            log.warning(
                "value fitted to its column table=%s column=%s uid=%s change=%s",
                table.name,
                change.column,
                values.get("uid") or values.get("workload_uid") or values.get("runner_set_uid"),
                change.change,
            )
        return fitted


@dataclass(slots=True)
class Transaction:
    """The statements of one transaction, in dependency order."""

    conn: Connection
    statements: Statements
    cluster_name: str
    set_ids: dict[str, int]  # committed pool ids by uid (read only here)
    now: datetime
    counts: WriteCounts
    new_ids: dict[str, int]

    def write(self, changes: ChangeSet, cursors: Iterable[Cursor]) -> None:
        self._runner_sets(changes)
        self._resolve_set_ids(self._referenced_set_uids(changes))
        self._runners(changes.runners)
        self._runs(self._runs_to_write(changes.runs))
        self._history(changes)
        self._cursors(cursors)
        if changes.resolved:
            rejects.resolve(self.conn, self.cluster_name, list(changes.resolved))

    def _runner_sets(self, changes: ChangeSet) -> None:
        if not changes.runner_sets:
            return
        rows = [self._fit(RUNNER_SETS_TABLE, self._set_values(w.row)) for w in changes.runner_sets]
        for uid, id_ in self.conn.execute(self.statements.runner_sets, rows):
            self.new_ids[uid] = id_
        self._count(RUNNER_SETS_TABLE, [w.new for w in changes.runner_sets])

    def _runners(self, writes: tuple[RowWrite[RunnerStateRow], ...]) -> None:
        """Known rows first (a runner's end included), then new rows: on a table keyed
        by name, a new uid takes a name only after the runner that had it is recorded
        as gone; one first seen already superseded keeps none, nor does one whose name
        a newer runner holds (`names`)."""
        keyed_by_name = self.statements.free_names is not None
        known = [w for w in writes if not w.new]
        fresh = [w for w in writes if w.new and not (keyed_by_name and w.superseded)]
        for group in (known, fresh):
            rows = [self._fit(RUNNERS_TABLE, self._runner_values(w.row)) for w in group]
            if self.statements.free_names is not None:
                rows = names.holding_their_names(
                    self.conn, RUNNERS_TABLE, self.statements.free_names, rows, new=group is fresh
                )
            if not rows:
                continue
            self.conn.execute(self.statements.runners, rows)
            self.counts.add(
                RUNNERS_TABLE.name, "inserted" if group is fresh else "updated", len(rows)
            )

    def _runs_to_write(self, runs: tuple[WorkflowRunRow, ...]) -> list[WorkflowRunRow]:
        """All of them; one per runner where the table is keyed by runner (Lens), for
        the config Lens picks: the newest, as its processor takes the first enabled
        match of configs listed `ORDER BY id DESC` (Lens/modules/exporters/
        github-runners-exporter/pkg/processor/runner_state_processor.go:277-284;
        core/pkg/database/github_workflow_config_facade.go:128-132)."""
        if not self.statements.runs_keyed_by_runner:
            return list(runs)
        kept: dict[str, WorkflowRunRow] = {}
        for run in runs:
            held = kept.get(run.workload_uid)
            if held is None or run.config_id > held.config_id:
                kept[run.workload_uid] = run
        return list(kept.values())

    def _runs(self, runs: list[WorkflowRunRow]) -> None:
        rows = []
        for run in self._not_recorded_yet(runs):
            values = {c: getattr(run, c) for c in column_names(type(run))}
            values["runner_set_id"] = self._set_id(values.pop("runner_set_uid"))
            # Lens's runner_type (patch061), set as its processor sets it from the
            # runner state (runner_state_processor.go:305); workers have no run rows
            values["runner_type"] = self.statements.runner_kinds.of(run.workload_name)
            rows.append(self._fit(RUNS, {**values, "created_at": self.now, "updated_at": self.now}))
        if not rows:
            return
        # rows already there (same config and runner) are skipped, not counted
        inserted = [lens_tasks.RunLink(*r) for r in self.conn.execute(self.statements.runs, rows)]
        self.counts.add(RUNS.name, "inserted", len(inserted))
        if self.statements.collection_tasks and inserted:
            tasks = lens_tasks.enqueue(self.conn, self.statements.insert, inserted, now=self.now)
            self.counts.add(lens_tasks.TASKS_TABLE, "inserted", tasks)

    def _not_recorded_yet(self, runs: list[WorkflowRunRow]) -> list[WorkflowRunRow]:
        """On a table keyed by (runner_set_id, workload_uid) a runner has one run row:
        one recorded before its pool was (runner_set_id NULL, which conflicts with
        nothing) is the runner's, and a later insert must not add a second."""
        if not self.statements.runs_keyed_by_runner or not runs:
            return runs
        uids = {run.workload_uid for run in runs}
        query = select(RUNS.c.workload_uid).where(RUNS.c.workload_uid.in_(uids))
        recorded = set(self.conn.execute(query).scalars())
        return [run for run in runs if run.workload_uid not in recorded]

    def _history(self, changes: ChangeSet) -> None:
        for h in changes.history:
            values = {c: getattr(h, c) for c in column_names(type(h))}
            values["runner_set_id"] = self._set_id(h.runner_set_uid)
            row = self._fit(HISTORY, values)
            try:
                with self.conn.begin_nested():
                    self.conn.execute(self.statements.history, [row])
            except Exception as e:
                error = classified("writing a history row", e)
                if not isinstance(error, StoreRejected):
                    raise error from e
                self._refuse_history(h.runner_set_uid, h.observed_at, error)
                continue
            self.counts.add(HISTORY.name, "inserted", 1)

    def _refuse_history(self, set_uid: str, observed_at: datetime, error: StoreRejected) -> None:
        refused = RejectedObject(
            HISTORY_REFUSED, set_uid, None, None, observed_at.isoformat(), str(error)
        )
        values = rejects.values_of(
            refused, cluster_name=self.cluster_name, payload=(), now=self.now
        )
        rejects.record(self.conn, self._fit(REJECTS, values), self.statements.rejects)
        self.counts.refused.append(refused)

    def _cursors(self, cursors: Iterable[Cursor]) -> None:
        rows = [
            self._fit(
                CURSORS,
                {
                    "cluster_name": self.cluster_name,
                    "resource": c.resource,
                    "resource_version": c.resource_version,
                    "last_full_resync_at": self.now if c.full_resync else None,
                    "updated_at": self.now,
                },
            )
            for c in cursors
        ]
        if rows:
            self.conn.execute(self.statements.cursors, rows)
            self.counts.add(CURSORS.name, "upserted", len(rows))

    # -- values ------------------------------------------------------------------------

    def _fit(self, table: Table, values: dict[str, Any]) -> dict[str, Any]:
        return self.statements.fit(table, values, self.counts)

    def _count(self, table: Table, new: list[bool]) -> None:
        inserted = sum(new)
        self.counts.add(table.name, "inserted", inserted)
        self.counts.add(table.name, "updated", len(new) - inserted)

    def _set_values(self, row: RunnerSetRow) -> dict[str, Any]:
        values = {c: getattr(row, c) for c in RUNNER_SET_COLUMNS}
        return {**values, "created_at": self.now, "updated_at": self.now}

    def _runner_values(self, row: RunnerStateRow) -> dict[str, Any]:
        values = {c: getattr(row, c) for c in RUNNER_COLUMNS}
        values["runner_set_id"] = self._set_id(row.runner_set_uid)
        values["repository"] = row.job_repository
        values["completion_time"] = row.completed_at
        values["deletion_time"] = row.deletion_timestamp
        # Lens's runner_type (core/pkg/database/migrations/patch062-...sql:13), set from
        # the name as its reconciler does (exporters/github-runners-exporter/pkg/
        # reconciler/ephemeral_runner.go:133, 197), by `lens.worker_name_pattern`
        values["runner_type"] = self.statements.runner_kinds.of(row.name)
        return {**values, "created_at": self.now, "updated_at": self.now}

    def _set_id(self, uid: str | None) -> int | None:
        if uid is None:
            return None
        return self.new_ids.get(uid) or self.set_ids.get(uid)

    @staticmethod
    def _referenced_set_uids(changes: ChangeSet) -> set[str]:
        uids = {w.row.runner_set_uid for w in changes.runners}
        uids.update(r.runner_set_uid for r in changes.runs)
        uids.update(h.runner_set_uid for h in changes.history)
        return {u for u in uids if u is not None}

    def _resolve_set_ids(self, uids: set[str]) -> None:
        missing = [u for u in uids if u not in self.new_ids and u not in self.set_ids]
        if not missing:
            return
        query = select(RUNNER_SETS_TABLE.c.uid, RUNNER_SETS_TABLE.c.id).where(
            RUNNER_SETS_TABLE.c.uid.in_(missing)
        )
        self.new_ids.update({r.uid: r.id for r in self.conn.execute(query)})
