"""The whole core path on a real PostgreSQL server (and the same cycle on SQLite).

Kubernetes objects come from the shared samples through an in-memory Source; the
database is real: migrations, one transaction per cycle, PostgreSQL's own counters.
"""

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from freezegun import freeze_time
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from snapshotter.clock import utc_now
from snapshotter.db import engine as db_engine
from snapshotter.db import migrate
from snapshotter.db.store import DeclaredConfig, Store
from snapshotter.db.tables import Base
from snapshotter.errors import StoreUnavailable
from tests.support import arc_objects as arc
from tests.support.db_rows import allow_inserts, refuse_inserts, rows, snapshot
from tests.support.engine_harness import Harness
from tests.support.memory_source import MemorySource
from tests.support.pgstats import write_counters

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def fixed_clock() -> datetime:
    return NOW


def cluster_objects() -> dict[str, Any]:
    ars = arc.runner_set(uid="ars-org", rv="100")
    ghes = arc.served(arc.sample("ars-repo-ghes"), uid="ars-ghes", rv="101")
    ers = arc.ephemeral_runner_set(
        ars, name="arc-linux-x64-7x9kq", uid="ers-1", rv="102", replicas=3
    )
    pending = arc.served(
        arc.merged(
            arc.sample("er-pending"),
            {
                "metadata": {
                    "ownerReferences": [
                        {
                            **arc.sample("er-pending")["metadata"]["ownerReferences"][0],
                            "uid": "ers-1",
                        }
                    ]
                }
            },
        ),
        uid="er-pending",
        rv="103",
    )
    running = arc.served(arc.sample("er-running-job"), uid="er-running", rv="104")
    failed = arc.served(arc.sample("er-failed"), uid="er-failed", rv="105")
    return {
        "ars": ars,
        "ghes": ghes,
        "ers": ers,
        "pending": pending,
        "running": running,
        "failed": failed,
    }


def declare_configs(engine: Engine) -> None:
    Store(engine, cluster_name="prod").upsert_declared_configs(
        [
            DeclaredConfig(
                name="ci",
                runner_set_namespace="arc-runners",
                runner_set_name="arc-linux-x64",
                workflow_filter="ci.y*ml",
            ),
            DeclaredConfig(
                name="gpu", runner_set_namespace="arc-payments", runner_set_name="payments-api-gpu"
            ),
        ],
        now=NOW,
    )


def daemon(engine: Engine, **kwargs: object) -> Harness:
    return Harness(engine, clock=fixed_clock, cluster_name="prod", **kwargs)  # type: ignore[arg-type]


def first_cycle(engine: Engine) -> tuple[Harness, MemorySource, dict[str, Any]]:
    objects = cluster_objects()
    source = MemorySource(objects.values())
    declare_configs(engine)
    harness = daemon(engine)
    harness.poll(source)
    return harness, source, objects


def assert_first_cycle_rows(engine: Engine) -> None:
    sets = {r["uid"]: r for r in rows(engine, "github_runner_sets")}
    assert set(sets) == {"ars-org", "ars-ghes"}
    org = sets["ars-org"]
    assert (org["name"], org["namespace"], org["status"]) == (
        "arc-linux-x64",
        "arc-runners",
        "active",
    )
    assert (org["github_owner"], org["github_repo"], org["github_host"]) == (
        "acme-corp",
        "",
        "github.com",
    )
    assert (org["min_runners"], org["max_runners"], org["runner_scale_set_id"]) == (1, 20, 7)
    # the failed runner counts as current (ARC keeps it); 3 live runners, one busy
    assert (
        org["current_runners"],
        org["pending_runners"],
        org["running_runners"],
        org["failed_runners"],
        org["busy_runners"],
        org["desired_runners"],
    ) == (3, 1, 1, 1, 1, 3)
    assert (org["cluster_name"], org["resource_version"]) == ("prod", "100")
    assert org["created_at"] == org["last_sync_at"] == NOW
    ghes = sets["ars-ghes"]
    assert (ghes["github_owner"], ghes["github_repo"], ghes["github_host"]) == (
        "platform",
        "payments-api",
        "ghes.acme.internal",
    )
    assert ghes["runner_scale_set_name"] == "payments-gpu"

    runners = {r["uid"]: r for r in rows(engine, "github_ephemeral_runner_states")}
    assert set(runners) == {"er-pending", "er-running", "er-failed"}
    running = runners["er-running"]
    assert running["runner_set_id"] == org["id"]
    assert running["job_id"] == "85cb98eb-2919-5766-872c-cc997f618c1f"
    assert running["job_assigned_at"] == NOW
    assert (running["is_completed"], running["is_deleted"]) == (False, False)
    failed = runners["er-failed"]
    assert (failed["is_completed"], failed["completion_source"], failed["completed_at"]) == (
        True,
        "phase",
        NOW,
    )
    # a Failed runner that never had a job is finished but gets no workflow run
    assert rows(engine, "github_workflow_runs") == []
    history = rows(engine, "github_runner_set_history")
    assert sorted(h["runner_set_uid"] for h in history) == ["ars-ghes", "ars-org"]
    cursors = {
        c["resource"]: c["resource_version"] for c in rows(engine, "snapshotter_sync_cursors")
    }
    assert set(cursors) == {"autoscalingrunnersets", "ephemeralrunnersets", "ephemeralrunners"}


def test_migrations_from_empty_and_back(empty_pg_engine: Engine) -> None:
    assert migrate.current_revision(empty_pg_engine) is None
    migrate.upgrade(empty_pg_engine)
    assert migrate.schema_is_current(empty_pg_engine)
    with empty_pg_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    migrate.downgrade(empty_pg_engine, "base")
    with empty_pg_engine.connect() as conn:
        left = conn.execute(
            text(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' "
                "AND table_name <> 'alembic_version'"
            )
        ).scalar()
    assert left == 0
    migrate.upgrade(empty_pg_engine)
    assert migrate.schema_is_current(empty_pg_engine)


def test_replicas_starting_together_upgrade_one_after_the_other(
    empty_pg_engine: Engine,
) -> None:
    """Two replicas of a new install both run the migrations at start-up: without a
    lock one of them fails creating a table the other just created."""
    starting = threading.Barrier(4)
    failures: list[BaseException] = []

    def start() -> None:
        engine = db_engine.make_engine(empty_pg_engine.url.render_as_string(hide_password=False))
        try:
            starting.wait()
            migrate.upgrade(engine)
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            failures.append(e)
        finally:
            engine.dispose()

    replicas = [threading.Thread(target=start) for _ in range(4)]
    for replica in replicas:
        replica.start()
    for replica in replicas:
        replica.join(timeout=120)
    assert failures == []
    assert migrate.schema_is_current(empty_pg_engine)


def test_one_cycle_writes_the_expected_rows(pg_engine: Engine) -> None:
    first_cycle(pg_engine)
    assert_first_cycle_rows(pg_engine)


def test_second_identical_cycle_writes_zero_rows(pg_engine: Engine) -> None:
    harness, source, _ = first_cycle(pg_engine)
    after_first = write_counters(pg_engine)
    assert sum(ins for ins, _, _ in after_first.values()) > 0  # the counters do count
    assert harness.poll(source).rows_written == 0
    # and after a restart: a new daemon loads the state and still writes nothing
    daemon(pg_engine).poll(source)
    assert write_counters(pg_engine) == after_first


def test_a_list_of_unchanged_objects_queues_none_of_them(pg_engine: Engine) -> None:
    """An item at its stored resourceVersion only proves presence (sync/intake.py)."""
    harness, source, objects = first_cycle(pg_engine)
    harness.hand_list(source)
    assert len(harness.queue) == 0
    changed = arc.bumped(objects["running"], "9000")
    source.put(changed)
    harness.hand_list(source)
    assert harness.queue.pending_keys() == {("ephemeralrunners", changed["metadata"]["uid"])}


def test_finished_runner_gets_one_run_per_matching_config(pg_engine: Engine) -> None:
    harness, source, objects = first_cycle(pg_engine)
    source.remove(objects["running"])  # its job ended and ARC deleted it between two lists
    result = harness.poll(source)
    assert result.summary["runners_vanished"] == 1
    [run] = rows(pg_engine, "github_workflow_runs")
    org = next(r for r in rows(pg_engine, "github_runner_sets") if r["uid"] == "ars-org")
    assert run["config_id"] == next(
        c["id"] for c in rows(pg_engine, "github_workflow_configs") if c["name"] == "ci"
    )
    assert (run["workload_uid"], run["runner_set_id"], run["completion_source"]) == (
        "er-running",
        org["id"],
        "vanished",
    )
    assert (run["github_run_id"], run["head_branch"], run["workflow_name"]) == (
        15320047781,
        "pull/481/merge",
        "ci.yaml",
    )
    assert (run["status"], run["trigger_source"], run["workload_completed_at"]) == (
        "pending",
        "realtime",
        NOW,
    )
    state = next(
        r for r in rows(pg_engine, "github_ephemeral_runner_states") if r["uid"] == "er-running"
    )
    assert (state["is_deleted"], state["is_completed"]) == (True, True)


def readme_query(title: str) -> str:
    """The SQL block that follows `title` in the README."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    after = readme[readme.index(title) :]
    return after[after.index("```sql") + len("```sql") : after.index("```\n", 8)]


def test_resources_land_on_the_runner_state_and_the_run_row(pg_engine: Engine) -> None:
    now = [NOW]
    objects = cluster_objects()
    source = MemorySource(objects.values())
    declare_configs(pg_engine)
    harness = Harness(pg_engine, clock=lambda: now[0], cluster_name="prod")
    gpu = {"containers": [{"name": "runner", "resources": {"limits": {"amd.com/gpu": "8"}}}]}
    source.put(arc.bumped(objects["running"], "300", spec={"spec": gpu}))
    harness.poll(source)
    now[0] = NOW + timedelta(minutes=90)
    source.remove(objects["running"])  # the job ends with the requests of its last state
    harness.poll(source)
    state = next(
        r for r in rows(pg_engine, "github_ephemeral_runner_states") if r["uid"] == "er-running"
    )
    assert state["resource_requests"] == state["resource_limits"] == {"amd.com/gpu": 8}
    [run] = rows(pg_engine, "github_workflow_runs")
    assert run["resource_requests"] == {"amd.com/gpu": 8}
    pending = next(
        r for r in rows(pg_engine, "github_ephemeral_runner_states") if r["uid"] == "er-pending"
    )
    assert pending["resource_requests"] == {"cpu": 2000, "memory": 4 * 2**30}  # the sample's
    assert pending["resource_limits"] == {"cpu": 4000, "memory": 8 * 2**30}
    with pg_engine.connect() as conn:
        report = conn.execute(text(readme_query("GPU-hours per repository"))).all()
    assert [tuple(r) for r in report] == [("acme-corp/payments-api", "ci.yaml", 1, Decimal(12))]


def test_failure_mid_apply_leaves_the_database_as_before(pg_engine: Engine) -> None:
    _, source, objects = first_cycle(pg_engine)
    harness = daemon(pg_engine, retry_outages=False)  # as `--once` runs
    # a real failure inside the transaction, after the cycle's runner set and runner
    # rows have been written (not a data error: the database itself is in trouble)
    refuse_inserts(pg_engine, "github_workflow_runs", "injected failure")
    before = snapshot(pg_engine)
    source.remove(objects["running"])
    source.put(arc.bumped(objects["pending"], "200", status={"phase": "Running"}))
    with pytest.raises(StoreUnavailable, match="injected failure"):
        harness.poll(source)
    assert snapshot(pg_engine) == before
    allow_inserts(pg_engine, "github_workflow_runs")
    result = daemon(pg_engine).poll(source)  # the next cycle retries and succeeds
    assert result.summary["runners_vanished"] == 1
    assert len(rows(pg_engine, "github_workflow_runs")) == 1


def test_an_outage_holds_the_work_and_writes_it_once_the_database_answers(
    pg_engine: Engine,
) -> None:
    harness, source, objects = first_cycle(pg_engine)
    refuse_inserts(pg_engine, "github_workflow_runs", "database going down")
    source.remove(objects["running"])
    marker = harness.hand_list(source)
    harness.drain()
    assert not marker.done.is_set()  # held, not lost
    assert not harness.writer.database_available
    allow_inserts(pg_engine, "github_workflow_runs")
    harness.drain()
    assert marker.done.is_set()
    assert [r["workload_uid"] for r in rows(pg_engine, "github_workflow_runs")] == ["er-running"]


def test_reapplying_the_same_observation_creates_no_duplicate_run(pg_engine: Engine) -> None:
    harness, source, objects = first_cycle(pg_engine)
    source.remove(objects["running"])
    assert harness.poll(source).summary["runs_derived"] == 1
    # a restarted daemon that sees the runner again, then sees it gone, adds none
    restarted = daemon(pg_engine)
    source.put(objects["running"])
    restarted.poll(source)
    source.remove(objects["running"])
    restarted.poll(source)
    assert len(rows(pg_engine, "github_workflow_runs")) == 1


def test_the_same_cycle_on_sqlite(sqlite_engine: Engine) -> None:
    harness, source, objects = first_cycle(sqlite_engine)
    assert_first_cycle_rows(sqlite_engine)
    assert harness.poll(source).rows_written == 0
    source.remove(objects["running"])
    harness.poll(source)
    assert len(rows(sqlite_engine, "github_workflow_runs")) == 1


def test_timestamps_come_from_the_clock_frozen(sqlite_engine: Engine) -> None:
    with freeze_time("2026-11-28 13:14:15"):
        harness = Harness(sqlite_engine, clock=utc_now, cluster_name="prod")
        harness.poll(MemorySource(cluster_objects().values()))
    frozen = datetime(2026, 11, 28, 13, 14, 15, tzinfo=UTC)
    runner = next(
        r for r in rows(sqlite_engine, "github_ephemeral_runner_states") if r["uid"] == "er-running"
    )
    assert runner["first_seen_at"] == runner["job_assigned_at"] == frozen


def test_sqlite_fence_read_and_writes_share_one_transaction(tmp_path: Path) -> None:
    """The leader fence reads the epoch, then writes: on SQLite that read must be
    inside the write transaction, so that a new leader's epoch committed in between
    makes the old leader's writes fail instead of landing after the takeover."""
    url = f"sqlite:///{tmp_path / 'fence.db'}"
    old_leader, new_leader = db_engine.make_engine(url), db_engine.make_engine(url)
    try:
        with old_leader.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE epoch (n INTEGER)")
            conn.exec_driver_sql("INSERT INTO epoch VALUES (1)")
        with old_leader.connect() as fenced:
            fenced.begin()
            assert fenced.exec_driver_sql("SELECT n FROM epoch").scalar() == 1  # the check
            with new_leader.begin() as takeover:  # readers do not block a writer
                takeover.exec_driver_sql("UPDATE epoch SET n = 2")
            with pytest.raises(OperationalError, match="locked"):
                fenced.exec_driver_sql("INSERT INTO epoch VALUES (99)")  # the stale write
            fenced.rollback()
        with new_leader.connect() as conn:
            assert [r[0] for r in conn.exec_driver_sql("SELECT n FROM epoch")] == [2]
    finally:
        old_leader.dispose()
        new_leader.dispose()
