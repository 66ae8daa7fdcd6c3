"""Running it in production (SPEC §6): metrics, probes, and one cluster per cluster_name.

The daemon runs as a process against the real API server and PostgreSQL; its
/metrics, /healthz and /readyz are read over HTTP and the exposition is parsed with
prometheus_client's own parser.
"""

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from snapshotter.errors import ExitCode
from tests.support.apiserver import TestCluster
from tests.support.arc_sim import SimulatedArc
from tests.support.daemon_process import DaemonProcess
from tests.support.db_rows import rows
from tests.support.postgres import PostgresServer, free_port
from tests.support.waiting import eventually


def samples(daemon: DaemonProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed as Prometheus parses it."""
    status, body = daemon.get("/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def total(
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(
        value
        for (sample, sample_labels), value in metrics.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


@pytest.fixture
def daemon(
    kube: TestCluster, namespace: str, own_engine: Engine, tmp_path: Path
) -> Iterator[DaemonProcess]:
    process = DaemonProcess(
        kube,
        namespace,
        own_engine,
        tmp_path,
        interval_seconds=2,
        metrics={"port": free_port()},
        writer={"batch_size": 1},
    )
    yield process
    process.kill()


@pytest.mark.timeout(300)
def test_metrics_move_with_the_jobs_and_readiness_follows_the_database(
    sim: SimulatedArc,
    ers: dict[str, Any],
    own_postgres: PostgresServer,
    own_engine: Engine,
    daemon: DaemonProcess,
) -> None:
    for _ in range(60):  # a start-up reconciliation that takes a moment
        sim.pod_running(sim.register(sim.create_runner(ers)))
    daemon.start()
    statuses: list[int] = []
    while not statuses or statuses[-1] != 200:
        statuses.append(daemon.get("/readyz")[0])
        threading.Event().wait(0.02)
    assert 503 in statuses[: statuses.index(200)], "ready before the first sync"
    assert daemon.get("/healthz") == (200, "ok\n")

    jobs = [sim.run_job(ers, lifetime=0.05) for _ in range(5)]
    eventually(lambda: len(rows(own_engine, "github_workflow_runs")) == 5)
    metrics = samples(daemon)
    assert total(metrics, "snapshotter_rows_written_total", table="github_workflow_runs") == 5
    assert total(metrics, "snapshotter_jobs_finished_total", completion_source="deleted") == 5
    assert total(metrics, "snapshotter_job_duration_seconds_count") == 5
    assert total(metrics, "snapshotter_runner_startup_seconds_count") == 5
    assert total(metrics, "snapshotter_watch_events_total", type="DELETED") >= len(jobs)
    assert total(metrics, "snapshotter_apply_latency_seconds_count") > 0
    assert (
        total(metrics, "snapshotter_listed_objects", resource=f"ephemeralrunners/{sim.namespace}")
        >= 60
    )
    assert total(metrics, "snapshotter_last_commit_timestamp_seconds") > 0
    assert total(metrics, "snapshotter_leader") == 1
    assert total(metrics, "snapshotter_queue_capacity_objects") == 100_000

    own_engine.dispose()
    own_postgres.pause()
    body = eventually(lambda: _not_ready(daemon), timeout=60)
    assert body is not None
    assert "database" in body
    own_postgres.resume()
    eventually(lambda: daemon.get("/readyz")[0] == 200, timeout=60)
    after = samples(daemon)
    assert total(after, "snapshotter_errors_total", kind="database") >= 1


def _not_ready(daemon: DaemonProcess) -> str | None:
    status, body = daemon.get("/readyz")
    return body if status == 503 else None


def test_another_cluster_under_the_same_cluster_name_is_refused(
    kube: TestCluster, namespace: str, pg_engine: Engine, tmp_path: Path
) -> None:
    with pg_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO snapshotter_clusters (cluster_name, identity) "
                "VALUES ('east', 'uid-of-another-cluster')"
            )
        )
    daemon = DaemonProcess(kube, namespace, pg_engine, tmp_path, cluster_name="east")
    result = daemon.command("--once")
    assert result.returncode == ExitCode.STARTUP
    [line] = [entry for entry in result.stderr.splitlines() if "ERROR" in entry]
    assert "cluster_name 'east' is already written by another cluster" in line
    assert "uid-of-another-cluster" in line
    assert rows(pg_engine, "github_runner_sets") == []
    # under its own cluster_name the same cluster is fine, and claims it
    ok = DaemonProcess(kube, namespace, pg_engine, tmp_path, name="west", cluster_name="west")
    assert ok.command("--once").returncode == ExitCode.OK
    claimed = {r["cluster_name"]: r["identity"] for r in rows(pg_engine, "snapshotter_clusters")}
    assert claimed["west"] not in (None, "uid-of-another-cluster")
