"""A database outage while runners finish: the daemon keeps watching, holds the
events, retries, and records every job once the database is back."""

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from snapshotter.db import engine as db_engine
from snapshotter.db import migrate
from tests.e2e.conftest import database_url, running_daemon
from tests.support.arc_sim import Job, SimulatedArc
from tests.support.db_rows import rows
from tests.support.postgres import PostgresServer, find_bindir
from tests.support.waiting import eventually


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own, since it is stopped in the middle of the test."""
    bindir = find_bindir()
    assert bindir is not None  # the session's server started from the same binaries
    server = PostgresServer(bindir)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def outage_engine(own_postgres: PostgresServer) -> Iterator[Engine]:
    engine = db_engine.make_engine(own_postgres.create_database("snapshotter"))
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def test_jobs_finishing_during_a_database_outage_are_recorded_after_it(
    sim: SimulatedArc,
    make_settings: Any,
    own_postgres: PostgresServer,
    outage_engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(
        interval_seconds=60,
        database={"url": database_url(outage_engine)},
        workflow_configs=[{"name": "all-jobs", "runner_set_name": ""}],
    )
    ers = sim.create_ephemeral_runner_set(sim.create_runner_set("pool"))
    with running_daemon(settings):
        eventually(lambda: rows(outage_engine, "github_runner_sets"))
        before = sim.run_job(ers, Job.new(), lifetime=0.1)
        eventually(lambda: len(rows(outage_engine, "github_workflow_runs")) == 1)
        outage_engine.dispose()
        own_postgres.pause()
        during = [sim.run_job(ers, Job.new(), lifetime=0.1) for _ in range(5)]
        eventually(lambda: any("database unavailable" in r.getMessage() for r in caplog.records))
        own_postgres.resume()
        eventually(lambda: len(rows(outage_engine, "github_workflow_runs")) == 6, timeout=60)
    runs = {r["workload_uid"]: r for r in rows(outage_engine, "github_workflow_runs")}
    assert set(runs) == {before.uid} | {d.uid for d in during}
    assert {runs[d.uid]["completion_source"] for d in during} == {"deleted"}
