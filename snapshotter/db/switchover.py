"""Settling the Go exporter's in-flight runs when the snapshotter takes over.

On an adopted Lens database the exporter leaves a run row per runner it saw, in
`workload_pending` or `workload_running` until its processor sees the runner end.
Once the snapshotter writes instead, nobody would move those rows: the snapshotter's
own insert for the same runner meets Lens's key `(runner_set_id, workload_uid)` and
does nothing. After each complete list of runners they are settled as Lens would
have settled them (paths under Primus-SaFE `Lens/modules/`, commit 1b480383daec):

- the snapshotter saw the runner end (a finished or deleted runner state of its own):
  `pending`, ready for collection, with the completion facts it knows, as Lens's
  processor maps a deleted or finished runner
  (exporters/github-runners-exporter/pkg/processor/runner_state_processor.go:728-739,
  completion time :471-476);
- the runner was already gone when listed (no runner state of the snapshotter's, and
  the row is older than the list): `completed`, as Lens's StaleRunCleaner does
  (pkg/processor/stale_run_cleaner.go:164-169).

Only in-flight rows of this cluster's runner sets change, only their unknown facts
are filled, and no row is ever deleted.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, and_, case, exists, func, or_, select

from snapshotter.db import lens_tasks, tables
from snapshotter.db.live import ZERO_TIME_BEFORE

RUNS: Table = tables.WorkflowRun.__table__  # type: ignore[assignment]
RUNNERS: Table = tables.RunnerState.__table__  # type: ignore[assignment]
RUNNER_SETS: Table = tables.RunnerSet.__table__  # type: ignore[assignment]
# core/pkg/database/github_workflow_run_facade.go:20-21; ListStaleRunning (:512-517)
IN_FLIGHT = ("workload_pending", "workload_running")
PENDING = "pending"  # github_workflow_run_facade.go:24
COMPLETED = "completed"  # github_workflow_run_facade.go:27
CHUNK = 1000


@dataclass(frozen=True, slots=True)
class Settled:
    pending: int = 0
    completed: int = 0
    tasks: int = 0


def _in_scope(cluster_name: str, namespaces: Sequence[str]) -> Any:
    """In-flight rows of runner sets this daemon writes (its cluster, listed by it)."""
    r, rs = RUNS.c, RUNNER_SETS.c
    ours = select(rs.id).where(rs.cluster_name == cluster_name, rs.resource_version.is_not(None))
    clauses = [r.status.in_(IN_FLIGHT), r.runner_set_id.in_(ours)]
    if namespaces:
        clauses.append(r.workload_namespace.in_(namespaces))
    return and_(*clauses)


def _unknown(column: Any) -> Any:
    return or_(column.is_(None), column == 0)


def _unknown_time(column: Any) -> Any:
    return or_(column.is_(None), column < ZERO_TIME_BEFORE)  # Go's zero time.Time


def _pending_statement(scope: Any, now: datetime) -> Any:
    r, s = RUNS.c, RUNNERS.c
    ended = func.coalesce(s.completed_at, s.deletion_timestamp, now)
    source = func.coalesce(s.completion_source, case((s.is_deleted, "deleted"), else_="phase"))
    return (
        RUNS.update()
        .where(
            scope,
            s.uid == r.workload_uid,
            s.resource_version.is_not(None),
            or_(s.is_completed, s.is_deleted),
        )
        .values(
            status=PENDING,
            workload_completed_at=case(
                (_unknown_time(r.workload_completed_at), ended), else_=r.workload_completed_at
            ),
            github_run_id=case((_unknown(r.github_run_id), s.github_run_id), else_=r.github_run_id),
            github_job_id=case((_unknown(r.github_job_id), s.github_job_id), else_=r.github_job_id),
            completion_source=func.coalesce(r.completion_source, source),
            job_id=func.coalesce(r.job_id, s.job_id),
            job_assigned_at=func.coalesce(r.job_assigned_at, s.job_assigned_at),
            updated_at=now,
        )
        .returning(r.id, r.runner_set_id, r.config_id, r.workload_name, r.github_run_id)
    )


def _gone(conn: Connection, scope: Any, listed_before: datetime, seen: frozenset[str]) -> list[int]:
    """Rows of runners the list did not show and the snapshotter never recorded."""
    r, s = RUNS.c, RUNNERS.c
    ours = exists().where(s.uid == r.workload_uid, s.resource_version.is_not(None))
    query = select(r.id, r.workload_uid).where(scope, r.created_at < listed_before, ~ours)
    return [row.id for row in conn.execute(query) if row.workload_uid not in seen]


def _complete(conn: Connection, ids: list[int], now: datetime) -> int:
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        conn.execute(  # stale_run_cleaner.go:165-167 (UpdateFields adds updated_at)
            RUNS.update().where(RUNS.c.id.in_(chunk)).values(status=COMPLETED, updated_at=now)
        )
    return len(ids)


def settle(
    conn: Connection,
    insert: Any,
    *,
    cluster_name: str,
    namespaces: Sequence[str],
    listed_before: datetime,
    seen: frozenset[str],
    now: datetime,
    collection_tasks: bool,
) -> Settled:
    """Settle the in-flight rows after a complete list of runners that began at
    `listed_before` and showed `seen` (uids): rows made since the list began may be
    for runners it could not show, and a runner it showed is not gone even when its
    state is not written yet (e.g. refused by the database)."""
    scope = _in_scope(cluster_name, namespaces)
    ended = [lens_tasks.RunLink(*row) for row in conn.execute(_pending_statement(scope, now))]
    tasks = 0
    if collection_tasks and ended:  # runner_state_processor.go:560-565: a deleted runner
        tasks = lens_tasks.enqueue(conn, insert, ended, now=now)
    gone = _complete(conn, _gone(conn, scope, listed_before, seen), now)
    return Settled(pending=len(ended), completed=gone, tasks=tasks)
