"""The database side of the sync engine: what it reads, and one transaction per change.

Runner sets, runner states, workflow runs, history and the sync cursors are written
in one transaction (`upserts`): a failure anywhere rolls all of it back, so the
database is always as it was after the last committed one. Every transaction first
checks the leader epoch (`fencing`). Failures come back as StoreUnavailable (an
outage: retry later), StoreFenced (another replica leads) or StoreRejected (the
data: isolate it). Every call runs with a deadline (`deadline`), so a database that
stops answering is an outage, not a hang. The tables are read once, as the database
has them (`live`), before the first write.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, literal, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from snapshotter.db import fencing, lens_tasks, reads, rejects, switchover
from snapshotter.db.deadline import Deadline
from snapshotter.db.errors import translated
from snapshotter.db.live import LiveTable
from snapshotter.db.rejects import Reject
from snapshotter.db.upserts import REJECTS, WRITTEN, Statements, Transaction, WriteCounts
from snapshotter.diff.changes import ChangeSet, Cursor, RejectedObject
from snapshotter.diff.matching import WorkflowConfig
from snapshotter.diff.observed import Input
from snapshotter.diff.rows import RunnerSetRow, RunnerStateRow
from snapshotter.diff.runner_kinds import ALL_LAUNCHERS, RunnerKinds
from snapshotter.diff.state import SyncState
from snapshotter.errors import StoreError
from snapshotter.model.records import RUNNER_SETS, RUNNERS

__all__ = ["DeclaredConfig", "Reject", "Settled", "Store", "WriteCounts"]

Settled = switchover.Settled

T = TypeVar("T")
LOOKUP_CHUNK = 1000
CONFIGS = reads.CONFIGS


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


def _dialect_insert(name: str) -> Any:
    """The dialect's INSERT, which has the upsert clauses."""
    if name not in ("postgresql", "sqlite"):
        raise StoreError(f"unsupported database dialect {name!r}")
    module: Any = postgresql if name == "postgresql" else sqlite
    return module.insert


class Store:
    """The database side of the sync engine for one cluster (and namespace scope)."""

    def __init__(
        self,
        engine: Engine,
        *,
        cluster_name: str,
        namespaces: Sequence[str] = (),
        timeout: float = 60.0,
        runner_kinds: RunnerKinds = ALL_LAUNCHERS,
        collection_tasks: bool = False,
        shape: Statements | None = None,
    ) -> None:
        self.engine = engine
        self.cluster_name = cluster_name
        self.namespaces = tuple(namespaces)
        self.runner_kinds = runner_kinds
        self.collection_tasks = collection_tasks
        self.insert = _dialect_insert(engine.dialect.name)
        # the tables' shape, read at the first call unless a store on the same
        # database already read it (a schema changes only by migrating, before start)
        self._statements: Statements | None = shape
        self._set_ids: dict[str, int] = {}
        self._deadline = Deadline(timeout, on_timeout=engine.dispose)
        self.fence: int | None = None  # the leader epoch every write must still hold

    @property
    def timeout(self) -> float:
        """The longest a database call may take before it counts as an outage."""
        return self._deadline.seconds

    @property
    def statements(self) -> Statements:
        """Statements and fitters for the tables as the database has them (read once)."""
        if self._statements is None:

            def reflect() -> dict[str, LiveTable]:
                with self.engine.connect() as conn:
                    return {t.name: LiveTable.reflect(conn, t) for t in WRITTEN}

            live = self._call("reading the shape of the tables", reflect)
            self._statements = Statements(
                self.insert,
                live,
                runner_kinds=self.runner_kinds,
                collection_tasks=self.collection_tasks,
            )
        return self._statements

    def _live(self, name: str) -> LiveTable:
        return self.statements.live[name]

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
        sets_live = self._live(reads.RUNNER_SETS_TABLE.name)
        runners_live = self._live(reads.RUNNERS_TABLE.name)

        def load() -> SyncState:
            with self.engine.connect() as conn:
                table = reads.RUNNER_SETS_TABLE
                runner_sets, ids = reads.runner_sets(
                    conn,
                    sets_live,
                    table.c.status == "active",
                    reads.scope(table, self.cluster_name, self.namespaces),
                )
                self._set_ids.update(ids)
                table = reads.RUNNERS_TABLE
                runners = reads.runners(
                    conn,
                    runners_live,
                    table.c.is_deleted.is_(False),
                    reads.scope(table, self.cluster_name, self.namespaces),
                )
                histories = reads.last_histories(conn, {r.uid: ids[r.uid] for r in runner_sets})
            return SyncState.loaded(runner_sets, runners, histories)

        return self._call("loading the persisted state", load)

    def lookup(self, resource: str, uids: Sequence[str]) -> list[RunnerSetRow | RunnerStateRow]:
        """Stored rows (deleted ones included) of objects the state does not hold."""
        if resource not in (RUNNER_SETS, RUNNERS) or not uids:
            return []
        sets_live = self._live(reads.RUNNER_SETS_TABLE.name)
        runners_live = self._live(reads.RUNNERS_TABLE.name)

        def load() -> list[RunnerSetRow | RunnerStateRow]:
            found: list[RunnerSetRow | RunnerStateRow] = []
            with self.engine.connect() as conn:
                for start in range(0, len(uids), LOOKUP_CHUNK):
                    chunk = uids[start : start + LOOKUP_CHUNK]
                    if resource == RUNNER_SETS:
                        where = reads.RUNNER_SETS_TABLE.c.uid.in_(chunk)
                        sets, ids = reads.runner_sets(conn, sets_live, where)
                        self._set_ids.update(ids)
                        found += sets
                    else:
                        where = reads.RUNNERS_TABLE.c.uid.in_(chunk)
                        found += reads.runners(conn, runners_live, where)
            return found

        return self._call(f"looking up {resource}", load)

    def load_configs(self) -> list[WorkflowConfig]:
        def load() -> list[WorkflowConfig]:
            with self.engine.connect() as conn:
                return reads.configs(conn, self.cluster_name)

        return self._call("loading workflow configs", load)

    def load_rejects(self) -> list[Reject]:
        """Every object refused and not written since (SPEC §4.8)."""

        def load() -> list[Reject]:
            with self.engine.connect() as conn:
                return rejects.load(conn, self.cluster_name)

        return self._call("loading rejected objects", load)

    def retry_requested(self) -> bool:
        def ask() -> bool:
            with self.engine.connect() as conn:
                return rejects.retry_requested(conn, self.cluster_name)

        return self._call("looking for a requested retry", ask)

    def retry_done(self) -> None:
        """Every rejected object was retried: a request no longer stands (rows the
        retry wrote are gone already; rows it could not write, e.g. a payload from a
        newer version, would otherwise keep asking)."""

        def clear() -> None:
            with self.engine.begin() as conn:
                rejects.clear_retry_requests(conn, self.cluster_name)

        self._call("clearing the request for a retry", clear)

    def request_retry(self, *, now: datetime) -> int:
        """Ask the leader to retry every rejected object now (`rejects retry`)."""

        def request() -> int:
            with self.engine.begin() as conn:
                return rejects.request_retry(conn, self.cluster_name, now)

        return self._call("requesting a retry of rejected objects", request)

    # -- clusters and leadership -----------------------------------------------------

    def claim_cluster(self, identity: str | None, *, now: datetime) -> str | None:
        """Record which cluster writes this cluster_name; returns the identity already
        recorded when it is a different one (the caller refuses to start)."""

        def claim() -> str | None:
            with self.engine.begin() as conn:
                return fencing.claim(conn, self.insert, self.cluster_name, identity, now)

        return self._call("recording the cluster identity", claim)

    def take_leadership(self, holder: str, *, now: datetime) -> int:
        """Bump the leader epoch and fence every later write with it."""

        def bump() -> int:
            with self.engine.begin() as conn:
                return fencing.bump_epoch(conn, self.insert, self.cluster_name, holder, now)

        self.fence = self._call("taking the leadership", bump)
        return self.fence

    def superseded_at(self) -> datetime | None:
        """When another replica took the leadership after this one held it (a newer
        epoch than the one this store was fenced with); None if none did."""
        fence = self.fence
        if fence is None:
            return None

        def read() -> datetime | None:
            with self.engine.connect() as conn:
                return fencing.successor_since(conn, self.cluster_name, fence)

        return self._call("reading the leader epoch", read)

    def check_lens_tables(self) -> None:
        """With `lens.collection_tasks`, the Lens tables it writes must exist: the
        snapshotter does not create Lens's tables (StoreError naming the missing)."""
        if not self.collection_tasks:
            return

        def look() -> list[str]:
            with self.engine.connect() as conn:
                return lens_tasks.missing(conn)

        missing = self._call("looking for Lens's task tables", look)
        if missing:
            raise StoreError(
                f"lens.collection_tasks is on but the database has no {', '.join(missing)}: "
                "run Lens's own migrations first (patch033, patch056), or turn the option off"
            )

    # -- writing -------------------------------------------------------------------

    def settle_switchover(
        self,
        *,
        listed_before: datetime,
        namespaces: Sequence[str],
        seen: frozenset[str],
        now: datetime,
    ) -> switchover.Settled:
        """Settle the Go exporter's in-flight run rows after a complete list of runners
        that showed `seen` (`switchover`); `namespaces` empty: the list covered all of
        this daemon's."""
        statements = self.statements

        def transaction() -> switchover.Settled:
            with self.engine.begin() as conn:
                fencing.check(conn, self.cluster_name, self.fence)
                return switchover.settle(
                    conn,
                    statements.insert,
                    cluster_name=self.cluster_name,
                    namespaces=namespaces or self.namespaces,
                    listed_before=listed_before,
                    seen=seen,
                    now=now,
                    collection_tasks=self.collection_tasks,
                )

        return self._call("settling the exporter's in-flight runs", transaction)

    def apply(self, changes: ChangeSet, cursors: Iterable[Cursor] = ()) -> WriteCounts:
        """Write a ChangeSet and its cursors in one transaction; nothing if both are empty."""
        counts = WriteCounts()
        cursors = list(cursors)
        if not changes.writes_rows and not cursors:
            return counts
        statements = self.statements
        new_ids: dict[str, int] = {}

        def transaction() -> None:
            with self.engine.begin() as conn:
                fencing.check(conn, self.cluster_name, self.fence)
                Transaction(
                    conn, statements, self.cluster_name, self._set_ids, changes.now, counts, new_ids
                ).write(changes, cursors)

        self._call("applying changes", transaction)
        self._set_ids.update(new_ids)  # only ids that were committed
        return counts

    def reject(self, rejected: RejectedObject, *, payload: Sequence[Input], now: datetime) -> None:
        """Record an object the database refused, with what a retry needs."""
        counts = WriteCounts()
        values = rejects.values_of(
            rejected, cluster_name=self.cluster_name, payload=payload, now=now
        )
        row = self.statements.fit(REJECTS, values, counts)

        def transaction() -> None:
            with self.engine.begin() as conn:
                fencing.check(conn, self.cluster_name, self.fence)
                rejects.record(conn, row, self.statements.rejects)

        self._call("recording a rejected object", transaction)

    def upsert_declared_configs(self, configs: Iterable[DeclaredConfig], *, now: datetime) -> int:
        """Insert or update YAML-declared configs by (namespace, name, cluster)."""
        rows = [self._config_row(c, now) for c in configs]
        if not rows:
            return 0
        stmt = self.insert(CONFIGS)
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
