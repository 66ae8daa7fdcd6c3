"""Final Lens's collection pipeline: its tasks and run summaries, written with a run.

Final Lens (Primus-SaFE `Lens/` at 1b480383daec) collects a run only when a
`workload_task_state` task names it, and shows runs through
`github_workflow_run_summaries`. Its processor writes both when a runner ends; with
`lens.collection_tasks` the snapshotter writes them field for field as that
processor does, in the transaction that inserts the run row, so a run and its tasks
commit together. The tables are Lens's: they are never created here, and a
database without them is refused at start (`missing`). Paths cited below are under
`Lens/modules/`.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import JSONB

TASKS_TABLE = "workload_task_state"
SUMMARIES_TABLE = "github_workflow_run_summaries"
REQUIRED = (TASKS_TABLE, SUMMARIES_TABLE)

# core/pkg/database/migrations/patch033-workload_task_state.sql:11-34
TASKS = sa.table(
    TASKS_TABLE,
    sa.column("workload_uid", sa.String),
    sa.column("task_type", sa.String),
    sa.column("status", sa.String),
    sa.column("ext", sa.JSON().with_variant(JSONB(), "postgresql")),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
# core/pkg/database/migrations/patch056-github_workflow_run_summaries.sql:7-89 (+061)
SUMMARIES = sa.table(
    SUMMARIES_TABLE,
    sa.column("id", sa.BigInteger),
    sa.column("github_run_id", sa.BigInteger),
    sa.column("github_run_number", sa.Integer),
    sa.column("github_run_attempt", sa.Integer),
    sa.column("owner", sa.String),
    sa.column("repo", sa.String),
    sa.column("primary_runner_set_id", sa.BigInteger),
    sa.column("config_id", sa.BigInteger),
    sa.column("status", sa.String),
    sa.column("collection_status", sa.String),
    sa.column("graph_fetched", sa.Boolean),
    sa.column("created_at", sa.DateTime()),  # TIMESTAMP (no time zone) in patch056:83-84
    sa.column("updated_at", sa.DateTime()),
)
RUNS = sa.table("github_workflow_runs", sa.column("id"), sa.column("run_summary_id"))
RUNNER_SETS = sa.table(
    "github_runner_sets", sa.column("id"), sa.column("github_owner"), sa.column("github_repo")
)


@dataclass(frozen=True, slots=True)
class RunLink:
    """What Lens's tasks and summary need of one run row."""

    id: int
    runner_set_id: int | None
    config_id: int | None
    workload_name: str | None
    github_run_id: int | None


def missing(conn: Connection) -> list[str]:
    """Lens's tables this pipeline writes that the database lacks."""
    inspector = sa.inspect(conn)
    return [name for name in REQUIRED if not inspector.has_table(name)]


def enqueue(conn: Connection, insert: Any, runs: Iterable[RunLink], *, now: datetime) -> int:
    """The summary link and the tasks of runs just inserted (or settled); tasks
    already there are left alone. Returns the number of tasks written."""
    written = 0
    for run in runs:
        summary_id = _summary(conn, insert, run, now)
        if summary_id is not None:
            conn.execute(RUNS.update().where(RUNS.c.id == run.id).values(run_summary_id=summary_id))
        rows = _tasks(run, now)
        stmt = insert(TASKS).on_conflict_do_nothing(index_elements=["workload_uid", "task_type"])
        written += len(conn.execute(stmt.returning(TASKS.c.workload_uid), rows).all())
    return written


def _tasks(run: RunLink, now: datetime) -> list[dict[str, Any]]:
    # exporters/github-runners-exporter/pkg/processor/runner_state_processor.go:601-626
    # (submitCollectionTask): a stable uid, status pending, ext as the executor reads
    # it (pkg/executor/collection.go:21-28, 100-101). Go's zero for an unknown id.
    rows = [
        {
            "workload_uid": f"collection-{run.id}",
            "task_type": "github_workflow_collection",  # core/pkg/constant/task.go:37
            "status": "pending",  # core/pkg/constant/task.go:8
            "ext": {
                "run_id": run.id,
                "runner_set_id": run.runner_set_id or 0,
                "config_id": run.config_id or 0,
                "workload_name": run.workload_name or "",
            },
            "created_at": now,  # core/pkg/database/workload_task_facade.go:78-81
            "updated_at": now,
        }
    ]
    if run.github_run_id:  # runner_state_processor.go:588-590: only with a GitHub run
        # core/pkg/workflow/periodic_sync_executor.go:624-642 (CreateCompletionSyncTask,
        # called with fetchJobs=fetchLogs=true at runner_state_processor.go:593)
        rows.append(
            {
                "workload_uid": f"completion-sync-{run.id}-{int(now.timestamp())}",
                "task_type": "github_completion_sync",  # core/pkg/constant/task.go:46
                "status": "pending",
                "ext": {
                    "run_id": run.id,  # core/pkg/workflow/sync_executor.go:31
                    "sync_type": "completion",  # core/pkg/workflow/oneshot_sync_executor.go:22
                    "fetch_jobs": True,  # oneshot_sync_executor.go:25
                    "fetch_logs": True,  # oneshot_sync_executor.go:26
                },
                "created_at": now,
                "updated_at": now,
            }
        )
    return rows


def _summary(conn: Connection, insert: Any, run: RunLink, now: datetime) -> int | None:
    """Get or create the run's summary, as Lens's processor does only for a run with a
    GitHub run id whose runner set names an owner and a repository
    (runner_state_processor.go:229-230; placeholders, :231-234, are Lens's own)."""
    if not run.github_run_id or run.runner_set_id is None:
        return None
    where = RUNNER_SETS.c.id == run.runner_set_id
    owner_repo = conn.execute(
        sa.select(RUNNER_SETS.c.github_owner, RUNNER_SETS.c.github_repo).where(where)
    ).first()
    if owner_repo is None or not owner_repo.github_owner or not owner_repo.github_repo:
        return None
    found = _existing_summary(conn, run)
    if found is not None:
        return found
    # core/pkg/database/github_workflow_run_summary_facade.go:97-109 (GetOrCreateByRunID)
    naive_now = now.astimezone(UTC).replace(tzinfo=None)
    values = {
        "github_run_id": run.github_run_id,
        "github_run_number": 0,  # NOT NULL in patch056:12; Lens leaves it unset (0)
        "github_run_attempt": 1,  # facade.go:100
        "owner": owner_repo.github_owner,  # facade.go:101, the runner set's (processor :341)
        "repo": owner_repo.github_repo,  # facade.go:102
        "primary_runner_set_id": run.runner_set_id,  # facade.go:103
        "config_id": run.config_id or None,  # patch056:66; the run's config
        "status": "queued",  # facade.go:104, RunSummaryStatusQueued (facade.go:18)
        "collection_status": "pending",  # facade.go:105, RunSummaryCollectionPending (:38)
        "graph_fetched": False,  # facade.go:106
        "created_at": naive_now,  # facade.go:107-108
        "updated_at": naive_now,
    }
    stmt = insert(SUMMARIES).on_conflict_do_nothing(
        index_elements=["github_run_id", "github_run_attempt"]  # uq_run_summaries_run_attempt
    )
    created = conn.execute(stmt.returning(SUMMARIES.c.id), [values]).first()
    if created is not None:
        return int(created.id)
    return _existing_summary(conn, run)  # facade.go:111-124: created meanwhile


def _existing_summary(conn: Connection, run: RunLink) -> int | None:
    """facade.go:78-91: the first summary of this GitHub run (by id), its primary
    runner set backfilled when it has none."""
    s = SUMMARIES.c
    row = conn.execute(
        sa.select(s.id, s.primary_runner_set_id)
        .where(s.github_run_id == run.github_run_id)
        .order_by(s.id)
        .limit(1)
    ).first()
    if row is None:
        return None
    if not row.primary_runner_set_id and run.runner_set_id:
        conn.execute(
            SUMMARIES.update().where(s.id == row.id).values(primary_runner_set_id=run.runner_set_id)
        )
    return int(row.id)
