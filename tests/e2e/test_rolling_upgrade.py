"""A rolling upgrade under a job stream (SPEC §4.9, README "Upgrading").

The previous schema head's daemon (installed from its own commit,
tests/support/previous_version.py) leads and writes while jobs run. A replica of
this version starts beside it: it migrates the schema (auto_migrate, under the
advisory lock) while the old leader keeps writing, then waits as a standby. The old
leader keeps writing on the new schema without an error, gets SIGTERM, releases the
Lease, and the new replica takes over. No job is lost, none is recorded twice.

Slow (the old version's venv is installed once per commit, ~1 min; the run itself
about as long): marked `upgrade`, run by `make test-upgrade`.
"""

import copy
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from snapshotter.clock import monotonic
from snapshotter.db import migrate
from tests.e2e.test_leader_election import leader_row, metric
from tests.support.apiserver import TestCluster
from tests.support.arc_sim import SimulatedArc
from tests.support.daemon_process import SNAPSHOTTER, DaemonProcess
from tests.support.db_rows import rows
from tests.support.load import SteadyLoad
from tests.support.postgres import free_port
from tests.support.previous_version import installed_previous_version
from tests.support.waiting import eventually

pytestmark = pytest.mark.upgrade

GPU_RUNNER = {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"amd.com/gpu": "8"}}
# What the old leader must not log while the new schema is in place: an error, or a
# warning about the database (unavailable, a value fitted, an object refused).
WRITE_TROUBLE = (" ERROR ", "Traceback", "database", "fitted", "rejected by", "refused by")


def replica(
    kube: TestCluster, namespace: str, engine: Engine, tmp_path: Path, name: str, exe: Path
) -> DaemonProcess:
    return DaemonProcess(
        kube,
        namespace,
        engine,
        tmp_path,
        name=name,
        executable=exe,
        env={"POD_NAME": name},
        interval_seconds=5,
        metrics={"port": free_port()},
        leader_election={"enabled": True, "namespace": "primus-lens"},
    )


def gpu_pool(ers: dict[str, Any]) -> dict[str, Any]:
    """The runner set as the simulator sees it, its runners asking for 8 GPUs."""
    pool = copy.deepcopy(ers)
    pool["spec"]["ephemeralRunnerSpec"]["spec"]["containers"][0]["resources"] = GPU_RUNNER
    return pool


def writes(daemon: DaemonProcess) -> float:
    return metric(daemon, "snapshotter_rows_written_total")


def trouble(log: str) -> list[str]:
    return [
        line
        for line in log.splitlines()
        if " INFO " not in line and any(t in line for t in WRITE_TROUBLE)
    ]


@pytest.mark.timeout(900)
def test_the_previous_version_leads_through_the_migration_and_hands_over(
    kube: TestCluster,
    namespace: str,
    sim: SimulatedArc,
    ers: dict[str, Any],
    empty_pg_engine: Engine,
    tmp_path: Path,
) -> None:
    previous = installed_previous_version()
    engine = empty_pg_engine
    old = replica(kube, namespace, engine, tmp_path, "old", previous.snapshotter)
    new = replica(kube, namespace, engine, tmp_path, "new", SNAPSHOTTER)
    began = monotonic()
    old.start()  # creates the schema at its own head
    try:
        eventually(old.started, timeout=120)
        eventually(lambda: leader_row(engine)["leader"] == "old", timeout=60)
        assert migrate.current_revision(engine) == previous.revision
        load = SteadyLoad(sim, gpu_pool(ers), rate=4, seconds=40, seed=16).start()
        threading.Event().wait(5)

        new.start()  # migrates while the old leader writes, then stands by
        eventually(new.started, timeout=120)
        assert migrate.current_revision(engine) == migrate.head_revision() != previous.revision
        log_before = len(old.log.read_text())
        written_before = writes(old)
        threading.Event().wait(10)  # the old leader writes on the new schema
        assert writes(old) > written_before
        assert leader_row(engine)["leader"] == "old"
        assert writes(new) == 0  # a standby writes nothing
        on_new_schema = old.log.read_text()[log_before:]
        assert metric(old, "snapshotter_errors_total") == 0
        assert metric(old, "snapshotter_objects_rejected_total") == 0
        assert metric(old, "snapshotter_values_fitted_total") == 0

        assert old.signal(signal.SIGTERM) == 0  # releases the Lease on its way out
        eventually(lambda: leader_row(engine)["leader"] == "new", timeout=30)
        eventually(lambda: writes(new) > 0, timeout=30)

        done = load.results()
        uids = {d.uid for d in done}
        eventually(
            lambda: uids <= {r["workload_uid"] for r in rows(engine, "github_workflow_runs")},
            timeout=60,
        )
    finally:
        old.kill()
        new.kill()
    runs = rows(engine, "github_workflow_runs")
    recorded = [r["workload_uid"] for r in runs]
    assert len(recorded) == len(set(recorded)) == len(done), "a job lost or recorded twice"
    assert not trouble(on_new_schema), trouble(on_new_schema)
    assert not trouble(old.log.read_text()), "the old leader logged a write problem"
    # the new leader records what the jobs cost; the old one left those columns empty
    assert any(
        r["resource_requests"] == {"cpu": 2000, "memory": 4 * 2**30, "amd.com/gpu": 8} for r in runs
    )
    print(  # noqa: T201 - the figures for the record
        f"rolling upgrade {previous.revision} -> {migrate.head_revision()}: "
        f"{len(done)} jobs, {monotonic() - began:.0f}s"
    )
