"""Loads the persisted state and applies one ChangeSet per transaction.

Runner sets, runner states, workflow runs, history and the sync cursors are written
in one transaction: a failure anywhere rolls all of it back, so the database is
always as it was after the last committed one. Rows are upserted whole, and the
upsert itself keeps facts final (SPEC §4.4): a deletion, a completion, a job's
fields and the time they were first seen are never replaced once set, and run rows
are never rewritten, so no ordering mistake elsewhere can erase a recorded job.
Values are fitted to their columns first (`fitting`). Failures come back as
StoreUnavailable (an outage: retry later) or StoreRejected (the data: isolate it).
Only this module maps rows to SQL.
"""

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Table,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from snapshotter.db import tables
from snapshotter.db.deadline import Deadline
from snapshotter.db.errors import translated
from snapshotter.db.fitting import TableFitter
from snapshotter.db.live import ZERO_TIME_BEFORE, LiveTable
from snapshotter.diff.changes import ChangeSet, Cursor, RejectedObject
from snapshotter.diff.matching import WorkflowConfig
from snapshotter.diff.rows import RunnerSetRow, RunnerStateRow, column_names
from snapshotter.diff.state import SyncState
from snapshotter.errors import StoreError, StoreFenced
from snapshotter.model.records import RUNNER_SETS, RUNNERS

log = logging.getLogger(__name__)

T = TypeVar("T")
RUNNER_SETS_TABLE: Table = tables.RunnerSet.__table__  # type: ignore[assignment]
RUNNERS_TABLE: Table = tables.RunnerState.__table__  # type: ignore[assignment]
RUNS: Table = tables.WorkflowRun.__table__  # type: ignore[assignment]
HISTORY: Table = tables.RunnerSetHistory.__table__  # type: ignore[assignment]
CONFIGS: Table = tables.WorkflowConfig.__table__  # type: ignore[assignment]
CURSORS: Table = tables.SyncCursor.__table__  # type: ignore[assignment]
REJECTS: Table = tables.Reject.__table__  # type: ignore[assignment]
CLUSTERS: Table = tables.Cluster.__table__  # type: ignore[assignment]
WRITTEN = (RUNNER_SETS_TABLE, RUNNERS_TABLE, RUNS, REJECTS)  # fitted to the live columns

_RUNNER_SET_COLUMNS = column_names(RunnerSetRow)
_RUNNER_COLUMNS = tuple(c for c in column_names(RunnerStateRow) if c != "runner_set_uid")
# Lens's own runner-state columns, filled from the snapshotter's (README, "Using an
# existing Primus Lens database").
LENS_RUNNER_COLUMNS = ("repository", "completion_time", "deletion_time")
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
LOOKUP_CHUNK = 1000


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
    """Rows written by one transaction, per table and kind, and values fitted."""

    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    fitted: Counter[str] = field(default_factory=Counter)  # "table.column" -> values changed

    def add(self, table: str, kind: str, n: int) -> None:
        if n:
            self.rows[f"{table}.{kind}"] += n

    @property
    def total(self) -> int:
        return sum(self.rows.values())


class Store:
    """The database side of the sync engine for one cluster (and namespace scope)."""

    def __init__(
        self,
        engine: Engine,
        *,
        cluster_name: str,
        namespaces: Sequence[str] = (),
        timeout: float = 60.0,
    ) -> None:
        self.engine = engine
        self.cluster_name = cluster_name
        self.namespaces = tuple(namespaces)
        self.sql = _Dialect(engine.dialect.name)
        self._prepared: _Prepared | None = None
        self._set_ids: dict[str, int] = {}
        self._deadline = Deadline(timeout, on_timeout=engine.dispose)
        self.fence: int | None = None  # the leader epoch every write must still hold

    def _ready(self) -> "_Prepared":
        """Statements and fitters for the tables as the database has them (read once)."""
        if self._prepared is None:

            def reflect() -> dict[str, LiveTable]:
                with self.engine.connect() as conn:
                    return {t.name: LiveTable.reflect(conn, t) for t in WRITTEN}

            live = self._call("reading the shape of the tables", reflect)
            self._prepared = _Prepared(
                live=live,
                statements=_Statements(self.sql, live),
                fitters={n: TableFitter(t.table, zeros=t.zeros) for n, t in live.items()},
            )
        return self._prepared

    @property
    def statements(self) -> "_Statements":
        return self._ready().statements

    @property
    def fitters(self) -> dict[str, TableFitter]:
        return self._ready().fitters

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one database operation with a deadline; errors become StoreErrors."""
        with translated(what):
            return self._deadline.run(fn)

    def close(self) -> None:
        self._deadline.close()
        self.engine.dispose()

    def probe(self) -> None:
        """A round trip; raises StoreUnavailable while the database cannot be reached."""

        def ping() -> None:
            with self.engine.connect() as conn:
                conn.execute(select(literal(1)))

        self._call("reaching the database", ping)

    # -- reading -------------------------------------------------------------------

    def load_state(self) -> SyncState:
        """Active runner sets and runners not yet deleted: what the diff compares to."""
        self._ready()

        def load() -> SyncState:
            with self.engine.connect() as conn:
                runner_sets = self._runner_sets(
                    conn, RUNNER_SETS_TABLE.c.status == "active", self._scope(RUNNER_SETS_TABLE)
                )
                runners = self._runners(
                    conn, RUNNERS_TABLE.c.is_deleted.is_(False), self._scope(RUNNERS_TABLE)
                )
            return SyncState.loaded(runner_sets, runners)

        return self._call("loading the persisted state", load)

    def lookup(self, resource: str, uids: Sequence[str]) -> list[RunnerSetRow | RunnerStateRow]:
        """Stored rows (deleted ones included) of objects the state does not hold."""
        if resource not in (RUNNER_SETS, RUNNERS) or not uids:
            return []
        self._ready()

        def load() -> list[RunnerSetRow | RunnerStateRow]:
            found: list[RunnerSetRow | RunnerStateRow] = []
            with self.engine.connect() as conn:
                for start in range(0, len(uids), LOOKUP_CHUNK):
                    chunk = uids[start : start + LOOKUP_CHUNK]
                    if resource == RUNNER_SETS:
                        found += self._runner_sets(conn, RUNNER_SETS_TABLE.c.uid.in_(chunk))
                    else:
                        found += self._runners(conn, RUNNERS_TABLE.c.uid.in_(chunk))
            return found

        return self._call(f"looking up {resource}", load)

    def _scope(self, table: Table) -> Any:
        clauses = [table.c.cluster_name == self.cluster_name]
        if self.namespaces:
            clauses.append(table.c.namespace.in_(self.namespaces))
        return and_(*clauses)

    # Rows without a resourceVersion were written by someone else (Lens's exporter,
    # on an adopted database): they are not the snapshotter's to compare or finish.

    def _runner_sets(self, conn: Connection, *where: Any) -> list[RunnerSetRow]:
        live = self._live(RUNNER_SETS_TABLE)
        query = select(RUNNER_SETS_TABLE).where(
            RUNNER_SETS_TABLE.c.resource_version.is_not(None), *where
        )
        rows = []
        for db_row in conn.execute(query).mappings():
            self._set_ids[db_row["uid"]] = db_row["id"]
            rows.append(RunnerSetRow(**live.read({c: db_row[c] for c in _RUNNER_SET_COLUMNS})))
        return rows

    def _runners(self, conn: Connection, *where: Any) -> list[RunnerStateRow]:
        live = self._live(RUNNERS_TABLE)
        set_uid = RUNNER_SETS_TABLE.c.uid.label("runner_set_uid")
        query = (
            select(RUNNERS_TABLE, set_uid)
            .outerjoin(RUNNER_SETS_TABLE, RUNNER_SETS_TABLE.c.id == RUNNERS_TABLE.c.runner_set_id)
            .where(RUNNERS_TABLE.c.resource_version.is_not(None), *where)
        )
        return [
            RunnerStateRow(
                runner_set_uid=m["runner_set_uid"],
                **live.read({c: m[c] for c in _RUNNER_COLUMNS}),
            )
            for m in conn.execute(query).mappings()
        ]

    def _live(self, table: Table) -> LiveTable:
        if self._prepared is None:  # _ready() runs before any database call that reads
            raise StoreError("the shape of the tables was not read")
        return self._prepared.live[table.name]

    def load_configs(self) -> list[WorkflowConfig]:
        """Enabled configs for this cluster (or for any cluster: cluster_name '')."""
        query = select(CONFIGS).where(
            CONFIGS.c.enabled.is_(True),
            or_(CONFIGS.c.cluster_name == "", CONFIGS.c.cluster_name == self.cluster_name),
        )

        def load() -> list[WorkflowConfig]:
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

        return self._call("loading workflow configs", load)

    def load_rejected(self) -> set[tuple[str, str, str]]:
        """(resource, uid, resourceVersion) of objects refused before: not retried."""
        query = select(REJECTS.c.resource, REJECTS.c.uid, REJECTS.c.resource_version).where(
            REJECTS.c.cluster_name == self.cluster_name
        )

        def load() -> set[tuple[str, str, str]]:
            with self.engine.connect() as conn:
                return {(r.resource, r.uid, r.resource_version) for r in conn.execute(query)}

        return self._call("loading rejected objects", load)

    # -- clusters and leadership -----------------------------------------------------

    def claim_cluster(self, identity: str | None, *, now: datetime) -> str | None:
        """Record which cluster writes this cluster_name; returns the identity already
        recorded when it is a different one (the caller refuses to start)."""

        def claim() -> str | None:
            with self.engine.begin() as conn:
                conn.execute(
                    self.sql.insert(CLUSTERS).on_conflict_do_nothing(),
                    [
                        {
                            "cluster_name": self.cluster_name,
                            "identity": identity,
                            "created_at": now,
                            "updated_at": now,
                        }
                    ],
                )
                row = conn.execute(
                    select(CLUSTERS.c.identity).where(CLUSTERS.c.cluster_name == self.cluster_name)
                ).one()
                if row.identity is None and identity is not None:
                    conn.execute(
                        CLUSTERS.update()
                        .where(CLUSTERS.c.cluster_name == self.cluster_name)
                        .values(identity=identity, updated_at=now)
                    )
                    return None
                known: str | None = row.identity
                return known if identity is not None and known not in (None, identity) else None

        return self._call("recording the cluster identity", claim)

    def take_leadership(self, holder: str, *, now: datetime) -> int:
        """Bump the leader epoch and fence every later write with it. The bump waits
        for transactions of the previous leader that are under way (they hold the
        epoch row FOR SHARE), and every later one of theirs fails."""

        def bump() -> int:
            with self.engine.begin() as conn:
                conn.execute(
                    self.sql.insert(CLUSTERS).on_conflict_do_nothing(),
                    [{"cluster_name": self.cluster_name, "created_at": now, "updated_at": now}],
                )
                epoch: int = conn.execute(
                    CLUSTERS.update()
                    .where(CLUSTERS.c.cluster_name == self.cluster_name)
                    .values(
                        leader_epoch=CLUSTERS.c.leader_epoch + 1,
                        leader=holder,
                        leader_since=now,
                        updated_at=now,
                    )
                    .returning(CLUSTERS.c.leader_epoch)
                ).scalar_one()
                return epoch

        self.fence = self._call("taking the leadership", bump)
        return self.fence

    def _check_fence(self, conn: Connection) -> None:
        if self.fence is None:
            return
        query = (
            select(CLUSTERS.c.leader_epoch, CLUSTERS.c.leader)
            .where(CLUSTERS.c.cluster_name == self.cluster_name)
            .with_for_update(read=True)
        )
        row = conn.execute(query).one_or_none()
        if row is None or row.leader_epoch != self.fence:
            holder = row.leader if row is not None else None
            raise StoreFenced(
                f"another replica leads since epoch {row.leader_epoch if row else '?'} "
                f"({holder}); this one held epoch {self.fence}"
            )

    # -- writing -------------------------------------------------------------------

    def apply(self, changes: ChangeSet, cursors: Iterable[Cursor] = ()) -> WriteCounts:
        """Write a ChangeSet and its cursors in one transaction; nothing if both are empty."""
        counts = WriteCounts()
        cursors = list(cursors)
        if not changes.writes_rows and not cursors:
            return counts
        self._ready()
        new_ids: dict[str, int] = {}

        def transaction() -> None:
            with self.engine.begin() as conn:
                self._check_fence(conn)
                writer = _Writer(conn, self, changes.now, counts, new_ids)
                writer.write(changes)
                writer.write_cursors(cursors)

        self._call("applying changes", transaction)
        self._set_ids.update(new_ids)  # only ids that were committed
        return counts

    def reject(self, rejected: RejectedObject, *, now: datetime) -> None:
        """Record an object the database refused (once per resourceVersion)."""
        values, _ = self.fitters[REJECTS.name].fit(
            {
                "cluster_name": self.cluster_name,
                "resource": rejected.resource,
                "uid": rejected.uid,
                "namespace": rejected.namespace,
                "name": rejected.name,
                "resource_version": rejected.resource_version,
                "error": rejected.error,
                "rejected_at": now,
            }
        )

        def transaction() -> None:
            with self.engine.begin() as conn:
                self._check_fence(conn)
                conn.execute(self.statements.rejects, [values])

        self._call("recording a rejected object", transaction)

    def upsert_declared_configs(self, configs: Iterable[DeclaredConfig], *, now: datetime) -> int:
        """Insert or update YAML-declared configs by (namespace, name, cluster)."""
        rows = [self._config_row(c, now) for c in configs]
        if not rows:
            return 0
        stmt = self.sql.insert(CONFIGS)
        key = ["runner_set_namespace", "runner_set_name", "cluster_name"]
        declared = [c for c in rows[0] if c not in (*key, "created_at", "updated_at")]
        stmt = stmt.on_conflict_do_update(
            index_elements=key,
            set_={c: stmt.excluded[c] for c in (*declared, "updated_at")},
            # unchanged declarations write nothing, so restarts stay write-free
            where=or_(*(CONFIGS.c[c].is_distinct_from(stmt.excluded[c]) for c in declared)),
        )

        def transaction() -> None:
            with self.engine.begin() as conn:
                conn.execute(stmt, rows)

        self._call("writing declared workflow configs", transaction)
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


class _Dialect:
    """The dialect's INSERT, which has the upsert clauses."""

    def __init__(self, name: str) -> None:
        if name not in ("postgresql", "sqlite"):
            raise StoreError(f"unsupported database dialect {name!r}")
        self._module: Any = postgresql if name == "postgresql" else sqlite

    def insert(self, table: Table) -> Any:
        return self._module.insert(table)


class _Statements:
    """The write statements, built once per store for the tables as they are:
    constructing an upsert (its `excluded` column collection) costs more than
    executing it."""

    def __init__(self, sql: _Dialect, live: dict[str, LiveTable]) -> None:
        self.insert = sql.insert
        self.runner_sets = self._runner_set_upsert()
        self.runners = self._runner_upsert(live[RUNNERS_TABLE.name])
        # Lens keys its runner states by (namespace, name) too: a runner that takes
        # the name of an earlier one (ARC may reuse names) replaces its row, as
        # Lens's own upsert does.
        t = RUNNERS_TABLE.c
        self.free_names = (
            RUNNERS_TABLE.delete().where(
                t.namespace == bindparam("free_namespace"),
                t.name == bindparam("free_name"),
                t.uid != bindparam("free_uid"),
            )
            if live[RUNNERS_TABLE.name].name_key
            else None
        )
        # Any unique key may already hold the run (ours, or Lens's): skip, never fail.
        self.runs = self.insert(RUNS).on_conflict_do_nothing().returning(RUNS.c.id)
        self.history = self.insert(HISTORY)
        self.rejects = self.insert(REJECTS).on_conflict_do_nothing()
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

    def _runner_set_upsert(self) -> Any:
        stmt = self.insert(RUNNER_SETS_TABLE)
        t, ex = RUNNER_SETS_TABLE.c, stmt.excluded
        columns = (*_RUNNER_SET_COLUMNS, "updated_at")
        values = {c: ex[c] for c in columns if c != "uid"}
        values["status"] = case((t.status == "deleted", t.status), else_=ex.status)
        values["deleted_at"] = func.coalesce(t.deleted_at, ex.deleted_at)
        return stmt.on_conflict_do_update(index_elements=["uid"], set_=values).returning(
            t.uid, t.id
        )

    def _runner_upsert(self, live: LiveTable) -> Any:
        stmt = self.insert(RUNNERS_TABLE)
        t, ex = RUNNERS_TABLE.c, stmt.excluded
        columns = (*_RUNNER_COLUMNS, *LENS_RUNNER_COLUMNS, "runner_set_id", "updated_at")
        values = {c: ex[c] for c in columns if c not in ("uid", "first_seen_at")}
        for fact in (*RUNNER_FACTS, "repository", "deletion_time"):
            values[fact] = case((_unknown(t[fact], live), ex[fact]), else_=t[fact])
        values["is_deleted"] = or_(t.is_deleted, ex.is_deleted)
        values["is_completed"] = or_(t.is_completed, ex.is_completed)
        for column in ("completed_at", "completion_time", "completion_source"):
            values[column] = case((t.is_completed, t[column]), else_=ex[column])
        return stmt.on_conflict_do_update(
            index_elements=["uid"],
            index_where=(t.uid != "") if live.uid_key_partial else None,
            set_=values,
        )


def _unknown(column: Any, live: LiveTable) -> Any:
    """The stored value means "not known yet": NULL, Lens's zero, or Go's zero time."""
    if column.name in live.zeros:
        return or_(column.is_(None), column == live.zeros[column.name])
    if isinstance(column.type, DateTime):
        return or_(column.is_(None), column < ZERO_TIME_BEFORE)
    return column.is_(None)


@dataclass(frozen=True, slots=True)
class _Prepared:
    live: dict[str, LiveTable]
    statements: _Statements
    fitters: dict[str, TableFitter]


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
        if changes.runner_sets:
            rows = [
                self._fitted(RUNNER_SETS_TABLE, self._set_values(w.row))
                for w in changes.runner_sets
            ]
            for uid, id_ in self.conn.execute(statements.runner_sets, rows):
                self.new_ids[uid] = id_
            self._count(RUNNER_SETS_TABLE, [w.new for w in changes.runner_sets])
        self._resolve_set_ids(self._referenced_set_uids(changes))
        if changes.runners:
            rows = [
                self._fitted(RUNNERS_TABLE, self._runner_values(w.row)) for w in changes.runners
            ]
            self._free_names([r for r, w in zip(rows, changes.runners, strict=True) if w.new])
            self.conn.execute(statements.runners, rows)
            self._count(RUNNERS_TABLE, [w.new for w in changes.runners])
        self._insert_runs(changes)
        self._insert_history(changes)

    def _count(self, table: Table, new: list[bool]) -> None:
        inserted = sum(new)
        self.counts.add(table.name, "inserted", inserted)
        self.counts.add(table.name, "updated", len(new) - inserted)

    def _fitted(self, table: Table, values: dict[str, Any]) -> dict[str, Any]:
        fitted, changes = self.store.fitters[table.name].fit(values)
        for change in changes:
            self.counts.fitted[f"{table.name}.{change.column}"] += 1
            log.warning(
                "value fitted to its column table=%s column=%s uid=%s change=%s",
                table.name,
                change.column,
                values.get("uid") or values.get("workload_uid"),
                change.change,
            )
        return fitted

    def _set_values(self, row: RunnerSetRow) -> dict[str, Any]:
        values = {c: getattr(row, c) for c in _RUNNER_SET_COLUMNS}
        return {**values, "created_at": self.now, "updated_at": self.now}

    def _runner_values(self, row: RunnerStateRow) -> dict[str, Any]:
        values = {c: getattr(row, c) for c in _RUNNER_COLUMNS}
        values["runner_set_id"] = self._set_id(row.runner_set_uid)
        values["repository"] = row.job_repository
        values["completion_time"] = row.completed_at
        values["deletion_time"] = row.deletion_timestamp
        return {**values, "created_at": self.now, "updated_at": self.now}

    def _free_names(self, rows: list[dict[str, Any]]) -> None:
        statement = self.store.statements.free_names
        if statement is not None and rows:
            self.conn.execute(
                statement,
                [
                    {"free_namespace": r["namespace"], "free_name": r["name"], "free_uid": r["uid"]}
                    for r in rows
                ],
            )

    def _set_id(self, uid: str | None) -> int | None:
        if uid is None:
            return None
        return self.new_ids.get(uid) or self.store._set_ids.get(uid)

    def _referenced_set_uids(self, changes: ChangeSet) -> set[str]:
        uids = {w.row.runner_set_uid for w in changes.runners}
        uids.update(r.runner_set_uid for r in changes.runs)
        uids.update(h.runner_set_uid for h in changes.history)
        return {u for u in uids if u is not None}

    def _resolve_set_ids(self, uids: set[str]) -> None:
        missing = [u for u in uids if u not in self.new_ids and u not in self.store._set_ids]
        if not missing:
            return
        query = select(RUNNER_SETS_TABLE.c.uid, RUNNER_SETS_TABLE.c.id).where(
            RUNNER_SETS_TABLE.c.uid.in_(missing)
        )
        self.new_ids.update({r.uid: r.id for r in self.conn.execute(query)})

    def _insert_runs(self, changes: ChangeSet) -> None:
        rows = []
        for run in changes.runs:
            values = {c: getattr(run, c) for c in column_names(type(run))}
            values["runner_set_id"] = self._set_id(values.pop("runner_set_uid"))
            rows.append(
                self._fitted(RUNS, {**values, "created_at": self.now, "updated_at": self.now})
            )
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
        if rows:
            self.conn.execute(self.store.statements.history, rows)
            self.counts.add(HISTORY.name, "inserted", len(rows))

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
        if rows:
            self.conn.execute(self.store.statements.cursors, rows)
            self.counts.add(CURSORS.name, "upserted", len(rows))
