"""Loads the persisted state and applies one ChangeSet per transaction.

Runner sets, runner states, workflow runs, history and the sync cursor are written in
one transaction: a failure anywhere rolls all of it back, so the database is always
as it was after the last committed cycle. Only this module maps rows to SQL.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from snapshotter.db import tables
from snapshotter.diff.changes import ChangeSet, Cursor, RowUpdate
from snapshotter.diff.matching import WorkflowConfig
from snapshotter.diff.rows import (
    RunnerSetRow,
    RunnerStateRow,
    column_names,
)
from snapshotter.diff.state import PersistedState
from snapshotter.errors import StoreError

log = logging.getLogger(__name__)

RUNNER_SETS: Table = tables.RunnerSet.__table__  # type: ignore[assignment]
RUNNERS: Table = tables.RunnerState.__table__  # type: ignore[assignment]
RUNS: Table = tables.WorkflowRun.__table__  # type: ignore[assignment]
HISTORY: Table = tables.RunnerSetHistory.__table__  # type: ignore[assignment]
CONFIGS: Table = tables.WorkflowConfig.__table__  # type: ignore[assignment]
CURSORS: Table = tables.SyncCursor.__table__  # type: ignore[assignment]

_RUNNER_SET_COLUMNS = column_names(RunnerSetRow)
_RUNNER_COLUMNS = tuple(c for c in column_names(RunnerStateRow) if c != "runner_set_uid")


@dataclass(frozen=True, slots=True)
class DeclaredConfig:
    """A workflow collection config declared in the YAML file."""

    name: str
    runner_set_namespace: str
    runner_set_name: str
    workflow_filter: str | None = None
    branch_filter: str | None = None
    description: str | None = None
    github_owner: str = ""
    github_repo: str = ""
    enabled: bool = True
    file_patterns: Sequence[str] = ()


@dataclass(slots=True)
class WriteCounts:
    """Rows written by one transaction, per table and kind."""

    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, table: str, kind: str, n: int) -> None:
        if n:
            self.rows[f"{table}.{kind}"] += n

    @property
    def total(self) -> int:
        return sum(self.rows.values())


class Store:
    """The database side of the sync engine for one cluster (and namespace scope)."""

    def __init__(
        self, engine: Engine, *, cluster_name: str, namespaces: Sequence[str] = ()
    ) -> None:
        self.engine = engine
        self.cluster_name = cluster_name
        self.namespaces = tuple(namespaces)
        self.statements = _Statements(engine.dialect.name)
        self._set_ids: dict[str, int] = {}

    # -- reading -------------------------------------------------------------------

    def load_state(self) -> PersistedState:
        """Active runner sets and runners not yet deleted: what the diff compares to."""
        try:
            with self.engine.connect() as conn:
                runner_sets = self._load_runner_sets(conn)
                runners = self._load_runners(conn)
        except SQLAlchemyError as e:
            raise StoreError(f"loading the persisted state failed: {e}") from e
        return PersistedState(runner_sets=runner_sets, runners=runners)

    def _scope(self, table: Table) -> Any:
        clauses = [table.c.cluster_name == self.cluster_name]
        if self.namespaces:
            clauses.append(table.c.namespace.in_(self.namespaces))
        return and_(*clauses)

    def _load_runner_sets(self, conn: Connection) -> dict[str, RunnerSetRow]:
        query = select(RUNNER_SETS).where(
            self._scope(RUNNER_SETS), RUNNER_SETS.c.status == "active"
        )
        rows = {}
        for db_row in conn.execute(query).mappings():
            self._set_ids[db_row["uid"]] = db_row["id"]
            rows[db_row["uid"]] = RunnerSetRow(**{c: db_row[c] for c in _RUNNER_SET_COLUMNS})
        return rows

    def _load_runners(self, conn: Connection) -> dict[str, RunnerStateRow]:
        set_uid = RUNNER_SETS.c.uid.label("runner_set_uid")
        query = (
            select(RUNNERS, set_uid)
            .outerjoin(RUNNER_SETS, RUNNER_SETS.c.id == RUNNERS.c.runner_set_id)
            .where(self._scope(RUNNERS), RUNNERS.c.is_deleted.is_(False))
        )
        return {
            m["uid"]: RunnerStateRow(
                runner_set_uid=m["runner_set_uid"], **{c: m[c] for c in _RUNNER_COLUMNS}
            )
            for m in conn.execute(query).mappings()
        }

    def load_configs(self) -> list[WorkflowConfig]:
        """Enabled configs for this cluster (or for any cluster: cluster_name '')."""
        query = select(CONFIGS).where(
            CONFIGS.c.enabled.is_(True),
            or_(CONFIGS.c.cluster_name == "", CONFIGS.c.cluster_name == self.cluster_name),
        )
        try:
            with self.engine.connect() as conn:
                return [
                    WorkflowConfig(
                        id=m["id"],
                        name=m["name"],
                        runner_set_namespace=m["runner_set_namespace"],
                        runner_set_name=m["runner_set_name"],
                        cluster_name=m["cluster_name"],
                        workflow_filter=m["workflow_filter"],
                        branch_filter=m["branch_filter"],
                        enabled=m["enabled"],
                    )
                    for m in conn.execute(query.order_by(CONFIGS.c.id)).mappings()
                ]
        except SQLAlchemyError as e:
            raise StoreError(f"loading workflow configs failed: {e}") from e

    # -- writing -------------------------------------------------------------------

    def apply(self, changes: ChangeSet, cursors: Iterable[Cursor] = ()) -> WriteCounts:
        """Write a ChangeSet and its cursors in one transaction; nothing if it is empty."""
        counts = WriteCounts()
        if not changes.writes_rows:
            return counts
        new_ids: dict[str, int] = {}
        try:
            with self.engine.begin() as conn:
                writer = _Writer(conn, self, changes.now, counts, new_ids)
                writer.write(changes)
                writer.write_cursors(cursors)
        except SQLAlchemyError as e:
            raise StoreError(f"applying changes failed, rolled back: {e}") from e
        self._set_ids.update(new_ids)  # only ids that were committed
        return counts

    def upsert_declared_configs(self, configs: Iterable[DeclaredConfig], *, now: datetime) -> int:
        """Insert or update YAML-declared configs by (namespace, name, cluster)."""
        rows = [self._config_row(c, now) for c in configs]
        if not rows:
            return 0
        stmt = self.statements.insert(CONFIGS)
        key = ["runner_set_namespace", "runner_set_name", "cluster_name"]
        declared = [c for c in rows[0] if c not in (*key, "created_at", "updated_at")]
        stmt = stmt.on_conflict_do_update(
            index_elements=key,
            set_={c: stmt.excluded[c] for c in (*declared, "updated_at")},
            # unchanged declarations write nothing, so restarts stay write-free
            where=or_(*(CONFIGS.c[c].is_distinct_from(stmt.excluded[c]) for c in declared)),
        )
        try:
            with self.engine.begin() as conn:
                conn.execute(stmt, rows)
        except SQLAlchemyError as e:
            raise StoreError(f"writing declared workflow configs failed: {e}") from e
        return len(rows)

    def _config_row(self, config: DeclaredConfig, now: datetime) -> dict[str, Any]:
        return {
            "name": config.name,
            "description": config.description,
            "runner_set_namespace": config.runner_set_namespace,
            "runner_set_name": config.runner_set_name,
            "cluster_name": self.cluster_name,
            "github_owner": config.github_owner,
            "github_repo": config.github_repo,
            "workflow_filter": config.workflow_filter,
            "branch_filter": config.branch_filter,
            "file_patterns": list(config.file_patterns),
            "enabled": config.enabled,
            "created_at": now,
            "updated_at": now,
        }


class _Statements:
    """The write statements, built once per store: constructing an upsert (its
    `excluded` column collection) costs more than executing it."""

    def __init__(self, dialect: str) -> None:
        if dialect not in ("postgresql", "sqlite"):
            raise StoreError(f"unsupported database dialect {dialect!r}")
        self._module: Any = postgresql if dialect == "postgresql" else sqlite
        stamps = ("created_at", "updated_at")
        self.runner_sets = self._upsert_by_uid(RUNNER_SETS, (*_RUNNER_SET_COLUMNS, *stamps))
        self.runners = self._upsert_by_uid(RUNNERS, (*_RUNNER_COLUMNS, "runner_set_id", *stamps))
        self.runs = (
            self.insert(RUNS)
            .on_conflict_do_nothing(index_elements=["config_id", "workload_uid"])
            .returning(RUNS.c.id)
        )
        self.history = self.insert(HISTORY)
        cursor = self.insert(CURSORS)
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
        self._updates: dict[tuple[str, tuple[str, ...]], Any] = {}

    def insert(self, table: Table) -> Any:
        return self._module.insert(table)

    def _upsert_by_uid(self, table: Table, columns: tuple[str, ...]) -> Any:
        # A uid already present is a row the in-memory state did not load (a pool or
        # runner persisted as deleted that is still listed): bring it up to date.
        stmt = self.insert(table)
        keep = {"uid", "created_at", "first_seen_at"}
        return stmt.on_conflict_do_update(
            index_elements=["uid"], set_={c: stmt.excluded[c] for c in columns if c not in keep}
        )

    def update(self, table: Table, columns: tuple[str, ...]) -> Any:
        """UPDATE table SET <columns> WHERE uid = :b_uid, for executemany."""
        key = (table.name, columns)
        if key not in self._updates:
            self._updates[key] = (
                update(table)
                .where(table.c.uid == bindparam("b_uid"))
                .values({c: bindparam(c) for c in columns})
            )
        return self._updates[key]


@dataclass(slots=True)
class _Writer:
    """The statements of one transaction, in dependency order."""

    conn: Connection
    store: Store
    now: datetime
    counts: WriteCounts
    new_ids: dict[str, int]

    def write(self, changes: ChangeSet) -> None:
        statements = self.store.statements
        runner_sets = [self._set_values(r) for r in changes.runner_sets.inserts]
        self._execute(statements.runner_sets, RUNNER_SETS, "upserted", runner_sets)
        self._update(RUNNER_SETS, changes.runner_sets.updates)
        self._resolve_set_ids(self._referenced_set_uids(changes))
        runners = [self._runner_values(r) for r in changes.runners.inserts]
        self._execute(statements.runners, RUNNERS, "upserted", runners)
        self._update(RUNNERS, [self._with_set_id(u) for u in changes.runners.updates])
        self._insert_runs(changes)
        self._insert_history(changes)

    def _execute(self, stmt: Any, table: Table, kind: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.conn.execute(stmt, rows)
            self.counts.add(table.name, kind, len(rows))

    def _set_values(self, row: RunnerSetRow) -> dict[str, Any]:
        values = {c: getattr(row, c) for c in _RUNNER_SET_COLUMNS}
        return {**values, "created_at": self.now, "updated_at": self.now}

    def _runner_values(self, row: RunnerStateRow) -> dict[str, Any]:
        values = {c: getattr(row, c) for c in _RUNNER_COLUMNS}
        values["runner_set_id"] = self._set_id(row.runner_set_uid)
        return {**values, "created_at": self.now, "updated_at": self.now}

    def _with_set_id(self, change: RowUpdate) -> RowUpdate:
        if "runner_set_uid" not in change.values:
            return change
        values = dict(change.values)
        values["runner_set_id"] = self._set_id(values.pop("runner_set_uid"))
        return RowUpdate(change.uid, values)

    def _set_id(self, uid: str | None) -> int | None:
        if uid is None:
            return None
        return self.new_ids.get(uid) or self.store._set_ids.get(uid)

    def _referenced_set_uids(self, changes: ChangeSet) -> set[str | None]:
        uids: set[str | None] = {r.runner_set_uid for r in changes.runners.inserts}
        uids.update(u.values.get("runner_set_uid") for u in changes.runners.updates)
        uids.update(r.runner_set_uid for r in changes.runs)
        uids.update(h.runner_set_uid for h in changes.history)
        uids.update(r.uid for r in changes.runner_sets.inserts)
        return uids

    def _resolve_set_ids(self, uids: set[str | None]) -> None:
        missing = [u for u in uids if u and u not in self.store._set_ids]
        if not missing:
            return
        query = select(RUNNER_SETS.c.uid, RUNNER_SETS.c.id).where(RUNNER_SETS.c.uid.in_(missing))
        self.new_ids.update({r.uid: r.id for r in self.conn.execute(query)})

    def _update(self, table: Table, changes: Sequence[RowUpdate]) -> None:
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for change in changes:
            columns = (*sorted(change.values), "updated_at")
            params = {**change.values, "updated_at": self.now, "b_uid": change.uid}
            by_columns[columns].append(params)
        for columns, batch in by_columns.items():
            self._execute(self.store.statements.update(table, columns), table, "updated", batch)

    def _insert_runs(self, changes: ChangeSet) -> None:
        rows = []
        for run in changes.runs:
            values = {c: getattr(run, c) for c in column_names(type(run))}
            values["runner_set_id"] = self._set_id(values.pop("runner_set_uid"))
            rows.append({**values, "created_at": self.now, "updated_at": self.now})
        if rows:  # rows already there (same config and runner) are skipped, not counted
            result = self.conn.execute(self.store.statements.runs, rows)
            self.counts.add(RUNS.name, "inserted", len(result.all()))

    def _insert_history(self, changes: ChangeSet) -> None:
        rows = [
            {
                **{c: getattr(h, c) for c in column_names(type(h))},
                "runner_set_id": self._set_id(h.runner_set_uid),
            }
            for h in changes.history
        ]
        self._execute(self.store.statements.history, HISTORY, "inserted", rows)

    def write_cursors(self, cursors: Iterable[Cursor]) -> None:
        rows = [
            {
                "cluster_name": self.store.cluster_name,
                "resource": c.resource,
                "resource_version": c.resource_version,
                "last_full_resync_at": self.now if c.full_resync else None,
                "updated_at": self.now,
            }
            for c in cursors
        ]
        self._execute(self.store.statements.cursors, CURSORS, "upserted", rows)
