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
from snapshotter.diff import mapping
from snapshotter.diff.changes import ChangeSet, RowWrite
from snapshotter.diff.rows import RunnerCounts, RunnerSetRow, RunnerStateRow
from snapshotter.model import parse
from tests.support import arc_objects as arc
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


def test_a_later_write_never_moves_when_a_runner_was_first_seen(pg_engine: Engine) -> None:
    write(pg_engine, FINISHED, new=True)
    write(pg_engine, replace(FINISHED, first_seen_at=T0 + timedelta(hours=1)), new=False)
    assert stored(pg_engine, "u1")["first_seen_at"] == FINISHED.first_seen_at


def test_a_pod_template_read_once_stays_known(pg_engine: Engine) -> None:
    """What a job cost is read from the runner's pod template, which later
    observations (a runner being deleted, a relist) may no longer carry."""
    requests, limits = {"cpu": 2000, "memory": 4 << 30}, {"nvidia.com/gpu": 1}
    write(
        pg_engine, replace(FINISHED, resource_requests=requests, resource_limits=limits), new=True
    )
    write(pg_engine, replace(FINISHED, resource_requests=None, resource_limits=None), new=False)
    row = stored(pg_engine, "u1")
    assert (row["resource_requests"], row["resource_limits"]) == (requests, limits)


def test_a_deleted_pool_stays_deleted(pg_engine: Engine) -> None:
    """A pool's deletion is a fact: a stale writer's live row does not bring it back,
    nor move when it was deleted."""
    gone_at = T0 + timedelta(minutes=5)
    deleted = replace(pool_row(), status="deleted", deleted_at=gone_at, resource_version="9")
    write_pool(pg_engine, deleted)
    write_pool(pg_engine, replace(pool_row(), status="active", deleted_at=None))
    row = rows(pg_engine, "github_runner_sets")[0]
    assert (row["status"], row["deleted_at"]) == ("deleted", gone_at)
    write_pool(pg_engine, replace(deleted, deleted_at=gone_at + timedelta(hours=1)))
    assert rows(pg_engine, "github_runner_sets")[0]["deleted_at"] == gone_at


def pool_row() -> RunnerSetRow:
    record = parse.parse_runner_set(arc.runner_set(uid="ars-1", rv="5")).record
    return mapping.runner_set_row(record, counts=RunnerCounts(), cluster_name="", now=T0)


def write_pool(engine: Engine, row: RunnerSetRow) -> None:
    store = Store(engine, cluster_name="", timeout=30)
    try:
        store.apply(ChangeSet(now=T0, runner_sets=(RowWrite(row, new=False),)))
    finally:
        store.close()
