"""The database keeps facts even against a writer whose memory lost them (SPEC §3).

The diff never rewrites a fact, but it decides from memory, and memory can be stale:
a paused leader resumed, a state loaded before another replica wrote. The upsert
itself refuses to rewrite what is known, so these tests drive the store directly
with a row that contradicts the stored one, on PostgreSQL.
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from snapshotter.db.store import Store
from snapshotter.diff.changes import ChangeSet, RowWrite
from snapshotter.diff.rows import RunnerStateRow
from tests.support.db_rows import rows
from tests.support.store_rows import runner_row

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def stored(engine: Engine, uid: str) -> dict[str, Any]:
    return next(r for r in rows(engine, "github_ephemeral_runner_states") if r["uid"] == uid)


def write(engine: Engine, row: RunnerStateRow, *, new: bool) -> None:
    store = Store(engine, cluster_name="", timeout=30)  # a fresh writer each time
    try:
        store.apply(ChangeSet(now=row.last_seen_at, runners=(RowWrite(row, new=new),)))
    finally:
        store.close()


FINISHED = replace(
    runner_row("u1", "pool-runner-a", T0),
    job_id="job-1",
    github_run_id=41,
    head_sha="abc",
    job_assigned_at=T0,
    completed_at=T0 + timedelta(minutes=5),
    completion_source="phase",
    is_completed=True,
    is_deleted=True,
    deletion_timestamp=T0 + timedelta(minutes=5),
    resource_version="200",
)


def test_a_stale_writer_cannot_rewrite_a_finished_runners_facts(pg_engine: Engine) -> None:
    write(pg_engine, FINISHED, new=True)
    later = T0 + timedelta(minutes=9)
    stale = replace(
        FINISHED,
        job_id="job-2",
        github_run_id=99,
        head_sha="fff",
        completed_at=later,
        completion_source="vanished",
        is_completed=False,
        is_deleted=False,
        deletion_timestamp=None,
        phase="Running",
        resource_version="150",
        last_seen_at=later,
    )
    write(pg_engine, stale, new=False)
    row = stored(pg_engine, "u1")
    assert (row["job_id"], row["github_run_id"], row["head_sha"]) == ("job-1", 41, "abc")
    assert (row["is_completed"], row["is_deleted"]) == (True, True)
    assert row["completed_at"] == FINISHED.completed_at
    assert row["completion_source"] == "phase"
    assert row["deletion_time"] == FINISHED.deletion_timestamp


def test_unknown_facts_are_filled_in_later(pg_engine: Engine) -> None:
    early = replace(
        FINISHED,
        job_id=None,
        github_run_id=None,
        head_sha=None,
        is_completed=False,
        completed_at=None,
        completion_source=None,
        is_deleted=False,
        deletion_timestamp=None,
    )
    write(pg_engine, early, new=True)
    write(pg_engine, FINISHED, new=False)
    row = stored(pg_engine, "u1")
    assert (row["job_id"], row["github_run_id"], row["head_sha"]) == ("job-1", 41, "abc")
    assert (row["is_completed"], row["completion_source"]) == (True, "phase")
    assert row["completed_at"] == FINISHED.completed_at
