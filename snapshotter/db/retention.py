"""Deleting old rows, a small batch per transaction (SPEC §4.9).

Each batch deletes at most `limit` of the oldest rows past a cut-off, found through
an index (migration 0009), in its own short transaction that first checks the
leader epoch (`fencing`): a deposed leader deletes nothing. Only this cluster's
rows are touched. Runner states go only when they can no longer matter: the runner
is deleted, the row is the snapshotter's (it has a uid and a resourceVersion), and
either it never had a job or its job's run row is written (a run row for its uid,
or Lens's processor linked one). Run rows are never deleted: they are Lens's.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, exists, func, or_, select

from snapshotter.db import fencing, reads, tables
from snapshotter.db.deadline import Deadline
from snapshotter.db.errors import translated

HISTORY: Table = reads.HISTORY
REJECTS: Table = tables.Reject.__table__  # type: ignore[assignment]
RUNNERS: Table = reads.RUNNERS_TABLE
RUNS: Table = tables.WorkflowRun.__table__  # type: ignore[assignment]
TABLES = (HISTORY.name, REJECTS.name, RUNNERS.name)


@dataclass(frozen=True, slots=True)
class Deleted:
    """What one batch deleted: how many rows, and for rejects, which objects."""

    table: str
    rows: int
    objects: tuple[str, ...] = ()


def _no_job() -> Any:
    """Not a single job field was ever seen (Lens writes 0 and '' for unknown)."""
    return and_(
        RUNNERS.c.job_assigned_at.is_(None),
        func.coalesce(RUNNERS.c.job_id, "") == "",
        func.coalesce(RUNNERS.c.job_request_id, 0) == 0,
        func.coalesce(RUNNERS.c.job_workflow_run_id, 0) == 0,
        func.coalesce(RUNNERS.c.github_run_id, 0) == 0,
        func.coalesce(RUNNERS.c.github_job_id, 0) == 0,
    )


def _run_written() -> Any:
    """A run row exists for the runner, or Lens's processor linked one."""
    return or_(
        exists().where(RUNS.c.workload_uid == RUNNERS.c.uid),
        func.coalesce(RUNNERS.c.workflow_run_id, 0) > 0,
    )


class Purger:
    """Deletes batches of old rows of one cluster (and namespace scope for runners).
    `fence` gives the leader epoch every batch must still hold (None: no election)."""

    def __init__(
        self,
        engine: Engine,
        *,
        cluster_name: str,
        namespaces: Sequence[str] = (),
        timeout: float = 60.0,
        fence: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.engine = engine
        self.cluster_name = cluster_name
        self.namespaces = tuple(namespaces)
        self.fence = fence
        self._deadline = Deadline(timeout, on_timeout=engine.dispose)

    def close(self) -> None:
        self._deadline.close()

    def delete_batch(self, table: str, *, older_than: datetime, limit: int) -> Deleted:
        """Delete up to `limit` of the oldest deletable rows of `table` from before
        `older_than`. Raises StoreFenced, StoreUnavailable."""
        statement = self._statement(table, older_than, limit)

        def transaction() -> Deleted:
            with self.engine.begin() as conn:
                fencing.check(conn, self.cluster_name, self.fence())
                return self._delete(conn, table, statement)

        with translated(f"deleting old rows of {table}"):
            return self._deadline.run(transaction)

    def _delete(self, conn: Connection, table: str, statement: Any) -> Deleted:
        if table != REJECTS.name:
            return Deleted(table, conn.execute(statement).rowcount)
        found = conn.execute(statement).all()
        described = tuple(f"{r.resource} {r.namespace}/{r.name} uid={r.uid}" for r in found)
        return Deleted(table, len(found), described)

    def _statement(self, table: str, older_than: datetime, limit: int) -> Any:
        if table == HISTORY.name:
            oldest = (
                select(HISTORY.c.id)
                .where(HISTORY.c.cluster_name == self.cluster_name)
                .where(HISTORY.c.observed_at < older_than)
                .order_by(HISTORY.c.observed_at)
                .limit(limit)
            )
            return HISTORY.delete().where(HISTORY.c.id.in_(oldest))
        if table == REJECTS.name:
            oldest = (
                select(REJECTS.c.id)
                .where(REJECTS.c.cluster_name == self.cluster_name)
                .where(REJECTS.c.rejected_at < older_than)
                .order_by(REJECTS.c.rejected_at)
                .limit(limit)
            )
            return (
                REJECTS.delete()
                .where(REJECTS.c.id.in_(oldest))
                .returning(REJECTS.c.resource, REJECTS.c.namespace, REJECTS.c.name, REJECTS.c.uid)
            )
        if table == RUNNERS.name:
            finished = self._finished_runners(older_than, limit)
            return RUNNERS.delete().where(RUNNERS.c.id.in_(finished))
        raise ValueError(f"no retention for table {table!r}")

    def _finished_runners(self, older_than: datetime, limit: int) -> Any:
        """Ids of deleted runners that can go: see the module doc."""
        return (
            select(RUNNERS.c.id)
            .where(RUNNERS.c.is_deleted)
            .where(RUNNERS.c.updated_at < older_than)
            .where(reads.scope(RUNNERS, self.cluster_name, self.namespaces))
            .where(RUNNERS.c.uid != "", RUNNERS.c.resource_version.is_not(None))
            .where(or_(_no_job(), _run_written()))
            .order_by(RUNNERS.c.updated_at)
            .limit(limit)
        )
