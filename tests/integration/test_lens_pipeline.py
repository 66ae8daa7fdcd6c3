"""Lens picks up what the snapshotter writes: on a Primus Lens database (real
PostgreSQL, Lens's own DDL), the Go exporter's in-flight runs are settled at a
switch-over, runs and runner states carry `runner_type`, the config Lens would pick
wins, and final Lens's collection tasks and run summaries come with each run."""

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from snapshotter.assembly import open_store
from snapshotter.db import migrate
from snapshotter.db.store import DeclaredConfig, Store
from snapshotter.diff.changes import ChangeSet
from snapshotter.diff.rows import WorkflowRunRow
from snapshotter.diff.runner_kinds import RunnerKinds
from snapshotter.errors import StartupError
from snapshotter.settings import Settings
from tests.support import arc_objects as arc
from tests.support import lens_schema
from tests.support.daemon_process import database_url
from tests.support.engine_harness import Harness
from tests.support.memory_source import MemorySource

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
NS, POOL = lens_schema.NAMESPACE, lens_schema.POOL


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def lens_engine(empty_pg_engine: Engine) -> Engine:
    return empty_pg_engine


# The exporter's in-flight rows beside the fixture's lens-er-0002.
EXTRA_RUNS: list[dict[str, Any]] = [
    {  # its runner was gone before the snapshotter's first list
        "workload_uid": "lens-er-0003",
        "workload_name": "gpu-runners-abcde-runner-ddddd",
        "created_at": "2026-05-01 09:40:00+00",
    },
    {  # made after that list began: the list could not show its runner
        "workload_uid": "lens-er-0004",
        "workload_name": "gpu-runners-abcde-runner-eeeee",
        "created_at": "2026-12-31 00:00:00+00",
    },
    {  # of a runner set this daemon does not write (another cluster's)
        "workload_uid": "lens-er-0005",
        "workload_name": "cpu-runners-fghij-runner-fffff",
        "created_at": "2026-05-01 09:40:00+00",
        "runner_set_id": 99,
    },
]


def lens_database(engine: Engine, *, task_tables: bool) -> None:
    lens_schema.create(engine)
    with engine.begin() as conn:
        for run in EXTRA_RUNS:
            conn.execute(
                text(
                    "INSERT INTO github_workflow_runs (config_id, workload_uid, workload_name,"
                    " workload_namespace, github_run_id, status, workload_completed_at,"
                    " runner_set_id, runner_set_name, runner_set_namespace, created_at)"
                    " VALUES (0, :workload_uid, :workload_name, :ns, 0, 'workload_pending',"
                    " '0001-01-01 00:00:00+00', :runner_set_id, :pool, :ns, :created_at)"
                ),
                {"runner_set_id": 1, **run, "ns": NS, "pool": POOL},
            )
    if task_tables:
        lens_schema.create_task_tables(engine)
    migrate.upgrade(engine)


def pool() -> tuple[dict[str, Any], dict[str, Any]]:
    """Lens's runner set (same uid as its row) and its EphemeralRunnerSet."""
    ars = arc.merged(
        arc.runner_set(name=POOL, namespace=NS, uid="lens-ars-0001", rv="100"),
        {"spec": {"githubConfigUrl": "https://github.com/acme-corp/models"}},
    )
    return ars, arc.ephemeral_runner_set(ars, uid="ers-1", rv="101")


def runner(
    ers: dict[str, Any], name: str, uid: str, rv: str, *, phase: str = "Running", run_id: int = 777
) -> dict[str, Any]:
    bare = arc.ephemeral_runner(ers, name=name, uid=uid, rv=rv, status={"phase": phase})
    return arc.with_job(bare, workflowRunId=run_id, jobId=f"job-{uid}")


def select(engine: Engine, query: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(query)).mappings()]


def runs(engine: Engine) -> dict[str, dict[str, Any]]:
    return {r["workload_uid"]: r for r in select(engine, "SELECT * FROM github_workflow_runs")}


def test_switch_over_settles_the_exporters_in_flight_rows(lens_engine: Engine) -> None:
    lens_database(lens_engine, task_tables=False)
    before = runs(lens_engine)
    ars, ers = pool()
    live = runner(ers, "gpu-runners-abcde-runner-bbbbb", "lens-er-0002", "110")
    source = MemorySource([ars, ers, live])
    clock = Clock()
    harness = Harness(lens_engine, clock=clock)

    harness.poll(source)  # the start-up reconciliation

    first = runs(lens_engine)
    assert first["lens-er-0002"]["status"] == "workload_running"  # its runner is live
    assert first["lens-er-0003"]["status"] == "completed"  # gone: as Lens's StaleRunCleaner
    assert first["lens-er-0003"]["updated_at"] == NOW
    assert first["lens-er-0004"] == before["lens-er-0004"]  # newer than the list
    assert first["lens-er-0005"] == before["lens-er-0005"]  # not this daemon's pool
    assert first["lens-er-0001"] == before["lens-er-0001"]  # final: never touched

    ended_at = clock.advance(60)
    source.put(arc.bumped(live, "120", status={"phase": "Succeeded"}))
    harness.poll(source)

    second = runs(lens_engine)
    settled = second["lens-er-0002"]
    assert settled["status"] == "pending"  # ready for collection
    assert settled["workload_completed_at"] == ended_at  # Lens had its zero time
    assert settled["completion_source"] == "phase"
    assert settled["github_run_id"] == before["lens-er-0002"]["github_run_id"]  # kept
    assert settled["job_id"] == "job-lens-er-0002"  # unknown to Lens: filled
    assert settled["runner_type"] == "unknown"  # Lens's own value is kept
    assert set(second) == set(before)  # no row deleted, none added for the same runner
    assert second["lens-er-0001"] == before["lens-er-0001"]
    assert second["lens-er-0004"] == before["lens-er-0004"]

    clock.advance(60)
    harness.poll(source)  # a later reconciliation: settled rows stay as they are

    assert runs(lens_engine) == second
    harness.close()


def test_runner_type_is_filled_and_workers_get_no_run_rows(lens_engine: Engine) -> None:
    lens_database(lens_engine, task_tables=False)
    # a second config matching the same runners: Lens picks the newest (id DESC)
    Store(lens_engine, cluster_name="").upsert_declared_configs(
        [DeclaredConfig(name="everything", runner_set_namespace="", runner_set_name="")], now=NOW
    )
    ars, ers = pool()
    launcher = runner(ers, "gpu-runners-abcde-runner-l1111", "er-launcher", "110", phase="Failed")
    worker = runner(ers, "gpu-runners-abcde-worker-w2222", "er-worker", "111", phase="Succeeded")
    live = runner(ers, "gpu-runners-abcde-runner-l3333", "er-live", "112")
    harness = Harness(
        lens_engine, clock=Clock(), runner_kinds=RunnerKinds.from_pattern(r"-worker-")
    )

    harness.poll(MemorySource([ars, ers, launcher, worker, live]))

    states = select(
        lens_engine,
        "SELECT uid, runner_type FROM github_ephemeral_runner_states WHERE uid LIKE 'er-%'",
    )
    assert {s["uid"]: s["runner_type"] for s in states} == {
        "er-launcher": "launcher",
        "er-worker": "worker",
        "er-live": "launcher",
    }
    written = runs(lens_engine)
    assert "er-worker" not in written  # a worker's job is its launcher's run
    newest = max(c["id"] for c in select(lens_engine, "SELECT id FROM github_workflow_configs"))
    assert newest > 1
    assert written["er-launcher"]["config_id"] == newest
    assert written["er-launcher"]["runner_type"] == "launcher"
    harness.close()


def _tasks(engine: Engine) -> list[tuple[str, str, str, dict[str, Any]]]:
    rows = select(engine, "SELECT workload_uid, task_type, status, ext FROM workload_task_state")
    return sorted((r["workload_uid"], r["task_type"], r["status"], r["ext"]) for r in rows)


def _summaries(engine: Engine) -> list[dict[str, Any]]:
    return select(
        engine,
        "SELECT id, github_run_id, github_run_attempt, github_run_number, owner, repo,"
        " primary_runner_set_id, config_id, status, collection_status, graph_fetched"
        " FROM github_workflow_run_summaries ORDER BY github_run_id",
    )


def _finished_pool() -> tuple[MemorySource, list[dict[str, Any]]]:
    ars, ers = pool()
    finished = [
        runner(ers, "gpu-runners-abcde-runner-a1111", "er-a", "110", phase="Succeeded"),
        runner(ers, "gpu-runners-abcde-runner-b2222", "er-b", "111", phase="Failed"),
        runner(ers, "gpu-runners-abcde-runner-c3333", "er-c", "112", phase="Succeeded", run_id=888),
    ]
    ended = arc.bumped(
        runner(ers, "gpu-runners-abcde-runner-bbbbb", "lens-er-0002", "113"),
        "114",
        status={"phase": "Succeeded"},
    )
    return MemorySource([ars, ers, *finished, ended]), finished


def _expected_tasks(
    written: dict[str, dict[str, Any]], uids: list[str], at: datetime
) -> list[tuple[str, str, str, dict[str, Any]]]:
    expected = []
    for uid in uids:
        run = written[uid]
        collection_ext = {
            "run_id": run["id"],
            "runner_set_id": 1,
            "config_id": run["config_id"],
            "workload_name": run["workload_name"],
        }
        sync_ext = {"run_id": run["id"], "sync_type": "completion", "fetch_jobs": True}
        expected += [
            (f"collection-{run['id']}", "github_workflow_collection", "pending", collection_ext),
            (
                f"completion-sync-{run['id']}-{int(at.timestamp())}",
                "github_completion_sync",
                "pending",
                {**sync_ext, "fetch_logs": True},
            ),
        ]
    return sorted(expected)


def test_collection_tasks_and_run_summaries_come_once_with_each_run(lens_engine: Engine) -> None:
    lens_database(lens_engine, task_tables=True)
    source, finished = _finished_pool()
    clock = Clock()
    harness = Harness(lens_engine, clock=clock, collection_tasks=True)

    harness.poll(source)

    written = runs(lens_engine)
    uids = ["er-a", "er-b", "er-c", "lens-er-0002"]  # ours, and the exporter's settled row
    assert written["lens-er-0002"]["status"] == "pending"
    assert _tasks(lens_engine) == _expected_tasks(written, uids, NOW)
    summaries = _summaries(lens_engine)
    assert [s["github_run_id"] for s in summaries] == [777, 888, 15320047782]
    for s in summaries:
        assert (s["github_run_attempt"], s["github_run_number"]) == (1, 0)
        assert (s["owner"], s["repo"], s["primary_runner_set_id"]) == ("acme-corp", "models", 1)
        assert (s["status"], s["collection_status"], s["graph_fetched"]) == (
            "queued",
            "pending",
            False,
        )
    assert summaries[0]["config_id"] == 1
    by_run = {s["github_run_id"]: s["id"] for s in summaries}
    assert written["er-a"]["run_summary_id"] == written["er-b"]["run_summary_id"] == by_run[777]
    assert written["er-c"]["run_summary_id"] == by_run[888]
    assert written["lens-er-0002"]["run_summary_id"] == by_run[15320047782]
    tasks_before = _tasks(lens_engine)

    clock.advance(60)  # the same runners deleted, the runs written again, a new process
    for obj in finished:
        source.put(arc.bumped(obj, "2" + obj["metadata"]["resourceVersion"]))
    harness.poll(source)
    harness.store.apply(ChangeSet(now=clock(), runs=(_run_row("er-a", 777),)))
    restarted = Harness(lens_engine, clock=clock, collection_tasks=True)
    source.remove(*finished)
    restarted.poll(source)

    assert _tasks(lens_engine) == tasks_before  # once per run
    assert _summaries(lens_engine) == summaries
    assert runs(lens_engine) == written  # and the runs are not rewritten
    harness.close()
    restarted.close()


def test_without_the_option_nothing_goes_to_lens_task_tables(lens_engine: Engine) -> None:
    lens_database(lens_engine, task_tables=True)
    source, _ = _finished_pool()
    harness = Harness(lens_engine, clock=Clock())

    harness.poll(source)

    written = runs(lens_engine)
    assert written["er-a"]["status"] == written["lens-er-0002"]["status"] == "pending"
    assert _tasks(lens_engine) == []
    assert _summaries(lens_engine) == []
    assert written["er-a"]["run_summary_id"] is None
    assert written["lens-er-0002"]["run_summary_id"] is None
    harness.close()


def test_the_option_on_a_database_without_lens_task_tables_refuses_to_start(
    lens_engine: Engine,
) -> None:
    lens_database(lens_engine, task_tables=False)
    settings = Settings(
        database={"url": database_url(lens_engine)},  # type: ignore[arg-type]
        lens={"collection_tasks": True},  # type: ignore[arg-type]
    )

    with pytest.raises(StartupError) as refused:
        open_store(settings, threading.Event())

    message = str(refused.value)
    assert "lens.collection_tasks" in message
    assert "workload_task_state, github_workflow_run_summaries" in message
    assert "\n" not in message


def _run_row(uid: str, run_id: int) -> WorkflowRunRow:
    return WorkflowRunRow(
        config_id=1,
        cluster_name="",
        workload_uid=uid,
        workload_name=f"gpu-runners-abcde-runner-{uid}",
        workload_namespace=NS,
        runner_set_uid="lens-ars-0001",
        runner_set_name=POOL,
        runner_set_namespace=NS,
        github_run_id=run_id,
        github_run_number=None,
        github_job_id=None,
        head_sha=None,
        head_branch=None,
        workflow_name=None,
        workflow_ref=None,
        workflow_path=None,
        job_id=None,
        job_display_name=None,
        job_repository=None,
        job_assigned_at=None,
        completion_source="phase",
        workload_started_at=None,
        workload_completed_at=NOW,
        status="pending",
        trigger_source="realtime",
    )
