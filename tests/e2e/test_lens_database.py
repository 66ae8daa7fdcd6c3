"""End to end on an adopted Primus Lens database: the simulated ARC runs jobs on the
real API server while the daemon writes into Lens's own tables."""

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from snapshotter import assembly
from snapshotter.db import engine as db_engine
from snapshotter.db import migrate
from tests.e2e.conftest import running_daemon
from tests.support import lens_schema
from tests.support.arc_sim import Job, SimulatedArc
from tests.support.daemon_process import database_url
from tests.support.db_rows import rows
from tests.support.postgres import PostgresServer
from tests.support.waiting import eventually

_names = itertools.count()


@pytest.fixture
def lens_engine(postgres: PostgresServer) -> Iterator[Engine]:
    engine = db_engine.make_engine(postgres.create_database(f"lense2e{next(_names)}"))
    lens_schema.create(engine)
    yield engine
    engine.dispose()


def lens_ui_config(engine: Engine, namespace: str, pool: str) -> int:
    """A config as the Lens UI saves it: bound to one runner set, with its JSONB."""
    with engine.begin() as conn:
        config_id: int = conn.execute(
            text(
                "INSERT INTO github_workflow_configs (name, runner_set_namespace,"
                " runner_set_name, github_owner, github_repo, file_patterns, display_settings)"
                " VALUES ('pool jobs', :ns, :pool, 'acme-corp', 'payments-api',"
                " '[\"out/*.json\"]', '{\"pinned\": true}') RETURNING id"
            ),
            {"ns": namespace, "pool": pool},
        ).scalar_one()
    return config_id


def test_daemon_on_an_adopted_lens_database(
    sim: SimulatedArc,
    make_settings: Any,
    lens_engine: Engine,
) -> None:
    migrate.upgrade(lens_engine)
    fixture_rows = lens_schema.lens_rows(lens_engine)
    config_id = lens_ui_config(lens_engine, sim.namespace, "pool")
    settings = make_settings(
        cluster_name="",
        database={"url": database_url(lens_engine)},
        # a second config matching the same runners: Lens's run key allows one row
        workflow_configs=[{"name": "everything", "runner_set_name": ""}],
    )
    ars = sim.create_runner_set("pool")
    ers = sim.create_ephemeral_runner_set(ars, replicas=2)

    with running_daemon(settings):
        # started (its first reconciliation wrote the pool) before the first job
        eventually(lambda: _runner_set_id(lens_engine, ars["metadata"]["uid"]), timeout=30)
        done = sim.run_jobs(ers, [Job.new() for _ in range(6)], lifetimes=[1.0] * 6, concurrency=3)
        uids = {d.uid for d in done}
        eventually(
            lambda: uids <= {r["workload_uid"] for r in rows(lens_engine, "github_workflow_runs")},
            timeout=30,
        )
        eventually(lambda: _all_deleted(lens_engine, uids), timeout=30)

    runs = [r for r in rows(lens_engine, "github_workflow_runs") if r["workload_uid"] in uids]
    assert sorted(r["workload_uid"] for r in runs) == sorted(uids)  # once per runner
    jobs = {d.uid: d.job for d in done}
    set_id = _runner_set_id(lens_engine, ars["metadata"]["uid"])
    for run in runs:
        job = jobs[run["workload_uid"]]
        assert job is not None
        assert run["config_id"] in (config_id, _config_id(lens_engine, "everything"))
        assert run["runner_set_id"] == set_id
        assert run["github_run_id"] == job.run_id
        assert run["workflow_name"] == "ci.yaml"  # a column patch057 dropped, kept
        assert run["safe_workload_id"] == ""  # Lens's NOT NULL default
    states = {
        s["uid"]: s for s in rows(lens_engine, "github_ephemeral_runner_states") if s["uid"] in uids
    }
    for uid, state in states.items():
        job = jobs[uid]
        assert job is not None
        assert state["repository"] == job.repository  # Lens's own columns, filled
        assert state["github_run_id"] == job.run_id
        assert state["completion_time"] is not None
        assert state["completion_time"] == state["completed_at"]
        assert state["is_completed"]
        assert state["is_deleted"]
        assert state["workflow_run_id"] is None or state["workflow_run_id"] == 0  # Lens's link
    assert lens_schema.lens_rows(lens_engine) == fixture_rows

    before = {t: rows(lens_engine, t) for t in ("github_workflow_runs", "github_runner_sets")}
    again = assembly.reconcile_once(settings)  # a restart: a new process, the same database

    assert again.applied.rows_written == 0
    assert {t: rows(lens_engine, t) for t in before} == before
    assert lens_schema.lens_rows(lens_engine) == fixture_rows


def _all_deleted(engine: Engine, uids: set[str]) -> bool:
    states = [s for s in rows(engine, "github_ephemeral_runner_states") if s["uid"] in uids]
    return len(states) == len(uids) and all(s["is_deleted"] for s in states)


def _runner_set_id(engine: Engine, uid: str) -> int | None:
    with engine.connect() as conn:
        found: int | None = conn.execute(
            text("SELECT id FROM github_runner_sets WHERE uid = :u"), {"u": uid}
        ).scalar_one_or_none()
    return found


def _config_id(engine: Engine, name: str) -> int:
    with engine.connect() as conn:
        found: int = conn.execute(
            text("SELECT id FROM github_workflow_configs WHERE name = :n"), {"n": name}
        ).scalar_one()
    return found
