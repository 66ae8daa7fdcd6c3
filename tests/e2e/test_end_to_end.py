"""End to end: real kube-apiserver + etcd with the ARC CRDs, simulated ARC, real
PostgreSQL, and the snapshotter as shipped (CLI `--once` and the daemon).
"""

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, text

from snapshotter import cli
from snapshotter.settings import Settings
from tests.e2e.conftest import running_daemon
from tests.support.apiserver import TestCluster
from tests.support.arc_sim import FinishedRunner, Job, SimulatedArc
from tests.support.daemon_process import database_url
from tests.support.db_rows import rows
from tests.support.pgstats import write_counters
from tests.support.samples_loader import load_samples
from tests.support.waiting import eventually

CI_CONFIG = {"name": "ci", "runner_set_name": "pool", "workflow_filter": "ci.yaml"}


def runs_by_workload(engine: Engine) -> dict[str, dict[str, Any]]:
    return {r["workload_uid"]: r for r in rows(engine, "github_workflow_runs")}


def config_file(tmp_path: Path, kube: TestCluster, namespaces: list[str], **extra: Any) -> Path:
    path = tmp_path / "snapshotter.yaml"
    config = {
        "cluster_name": "e2e",
        "namespaces": namespaces,
        "kubernetes": {"kubeconfig": str(kube.kubeconfig())},
        **extra,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_samples_then_once_then_rows_in_every_table(
    kube: TestCluster,
    namespace: str,
    pg_engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    payments = f"{namespace}-payments"
    created = load_samples(kube.rest(), {"arc-runners": namespace, "arc-payments": payments})
    monkeypatch.setenv("SNAPSHOTTER_DATABASE__URL", database_url(pg_engine))
    path = config_file(
        tmp_path,
        kube,
        [namespace, payments],
        workflow_configs=[
            {
                "name": "ci",
                "runner_set_namespace": namespace,
                "runner_set_name": "arc-linux-x64",
                "workflow_filter": "ci.yaml",
            }
        ],
    )

    assert cli.main(["--config", str(path), "--once"]) == 0
    summary = capsys.readouterr().out
    assert "listed: 1 autoscalingrunnersets/" in summary
    assert "runner states: 3 rows written" in summary

    sets = {r["name"]: r for r in rows(pg_engine, "github_runner_sets")}
    assert set(sets) == {"arc-linux-x64", "payments-api-gpu"}
    org = sets["arc-linux-x64"]
    assert org["uid"] == created["ars-org"]["metadata"]["uid"]
    assert org["resource_version"] == created["ars-org"]["metadata"]["resourceVersion"]
    assert (org["github_owner"], org["min_runners"], org["max_runners"]) == ("acme-corp", 1, 20)
    assert (
        org["current_runners"],
        org["pending_runners"],
        org["running_runners"],
        org["failed_runners"],
        org["busy_runners"],
        org["desired_runners"],
    ) == (3, 1, 1, 1, 1, 3)
    assert org["phase"] == "Running"
    assert sets["payments-api-gpu"]["github_repo"] == "payments-api"
    assert sets["payments-api-gpu"]["github_host"] == "ghes.acme.internal"

    states = {r["name"]: r for r in rows(pg_engine, "github_ephemeral_runner_states")}
    running = states["arc-linux-x64-7x9kq-runner-k8mzt"]
    assert running["uid"] == created["er-running-job"]["metadata"]["uid"]
    assert running["runner_set_id"] == org["id"]
    assert running["creation_timestamp"] == datetime.fromisoformat(
        created["er-running-job"]["metadata"]["creationTimestamp"]
    )
    assert (running["phase"], running["job_display_name"], running["job_workflow_run_id"]) == (
        "Running",
        "test (3.12)",
        15320047781,
    )
    assert states["arc-linux-x64-7x9kq-runner-v5rhc"]["completion_source"] == "phase"
    assert states["arc-linux-x64-7x9kq-runner-2d4pw"]["pod_failures"] == 1
    assert len(rows(pg_engine, "github_runner_set_history")) == 2
    assert len(rows(pg_engine, "snapshotter_sync_cursors")) == 6  # 3 resources x 2 namespaces
    assert rows(pg_engine, "github_workflow_runs") == []

    # ARC deletes the runner whose job ended; the next reconciliation records the run
    SimulatedArc(kube.rest(), namespace).delete_runner(created["er-running-job"])
    assert cli.main(["--config", str(path), "--once"]) == 0
    [run] = rows(pg_engine, "github_workflow_runs")
    assert (run["workload_uid"], run["head_branch"], run["workflow_name"]) == (
        running["uid"],
        "pull/481/merge",
        "ci.yaml",
    )
    assert run["completion_source"] == "vanished"

    # a reconciliation after no change writes nothing, by PostgreSQL's own counters
    before = write_counters(pg_engine)
    capsys.readouterr()
    assert cli.main(["--config", str(path), "--once"]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert write_counters(pg_engine) == before


def assert_run_matches(run: dict[str, Any], done: FinishedRunner, config_id: int) -> None:
    assert done.job is not None
    assert run["config_id"] == config_id
    assert run["workload_name"] == done.name
    assert run["github_run_id"] == done.job.run_id
    assert run["job_id"] == done.job.job_id
    assert run["workflow_ref"] == done.job.workflow_ref
    assert (run["workflow_name"], run["workflow_path"], run["head_branch"]) == (
        "ci.yaml",
        ".github/workflows/ci.yaml",
        "main",
    )
    assert run["job_repository"] == "acme-corp/payments-api"
    assert run["workload_started_at"] is not None
    assert run["workload_started_at"] <= done.created_at
    assert run["workload_completed_at"] >= run["job_assigned_at"] >= run["workload_started_at"]


def ci_config_id(engine: Engine, name: str = "ci") -> int:
    config_id: int = next(
        c["id"] for c in rows(engine, "github_workflow_configs") if c["name"] == name
    )
    return config_id


def test_daemon_records_every_job_of_slow_cycling_runners(
    sim: SimulatedArc,
    make_settings: Any,
    pg_engine: Engine,
) -> None:
    settings: Settings = make_settings(workflow_configs=[CI_CONFIG])
    ars = sim.create_runner_set("pool")
    ers = sim.create_ephemeral_runner_set(ars, replicas=4)
    with running_daemon(settings):
        done = sim.run_jobs(ers, [Job.new() for _ in range(8)], lifetimes=[2.5] * 8, concurrency=4)
        eventually(lambda: len(runs_by_workload(pg_engine)) == len(done), timeout=30)
    runs = runs_by_workload(pg_engine)
    assert set(runs) == {d.uid for d in done}
    for finished in done:
        assert_run_matches(runs[finished.uid], finished, ci_config_id(pg_engine))


def test_idle_runners_produce_no_run(
    sim: SimulatedArc,
    make_settings: Any,
    pg_engine: Engine,
) -> None:
    ars = sim.create_runner_set("pool")
    ers = sim.create_ephemeral_runner_set(ars)
    with running_daemon(make_settings(workflow_configs=[CI_CONFIG])):
        idle = [sim.idle_runner(ers, lifetime=2.5) for _ in range(2)]
        eventually(
            lambda: (
                all(r["is_deleted"] for r in rows(pg_engine, "github_ephemeral_runner_states"))
                and len(rows(pg_engine, "github_ephemeral_runner_states")) == 2
            )
        )
    states = rows(pg_engine, "github_ephemeral_runner_states")
    assert {s["uid"] for s in states} == {r.uid for r in idle}
    assert not any(s["is_completed"] for s in states)
    assert rows(pg_engine, "github_workflow_runs") == []


def test_runner_set_deletion_and_recreation(
    sim: SimulatedArc,
    make_settings: Any,
    pg_engine: Engine,
) -> None:
    first = sim.create_runner_set("pool")
    with running_daemon(make_settings()):
        eventually(lambda: rows(pg_engine, "github_runner_sets"))
        sim.delete_runner_set(first)
        eventually(lambda: rows(pg_engine, "github_runner_sets")[0]["status"] == "deleted")
        second = sim.create_runner_set("pool")
        eventually(lambda: len(rows(pg_engine, "github_runner_sets")) == 2)
    old, new = rows(pg_engine, "github_runner_sets")
    assert (old["uid"], old["status"]) == (first["metadata"]["uid"], "deleted")
    assert old["deleted_at"] is not None
    assert (new["uid"], new["status"], new["name"]) == (second["metadata"]["uid"], "active", "pool")


def test_config_added_while_running_takes_effect(
    sim: SimulatedArc,
    make_settings: Any,
    pg_engine: Engine,
    namespace: str,
) -> None:
    ars = sim.create_runner_set("pool")
    ers = sim.create_ephemeral_runner_set(ars)
    with running_daemon(make_settings()):
        before = sim.run_job(ers, lifetime=2.5)
        eventually(
            lambda: any(
                s["uid"] == before.uid and s["is_deleted"]
                for s in rows(pg_engine, "github_ephemeral_runner_states")
            )
        )
        with pg_engine.begin() as conn:  # as the Lens UI would
            conn.execute(
                text(
                    "INSERT INTO github_workflow_configs (name, runner_set_namespace,"
                    " runner_set_name, cluster_name, workflow_filter)"
                    " VALUES ('late', :ns, 'pool', 'e2e', 'ci.yaml')"
                ),
                {"ns": namespace},
            )
        after = sim.run_job(ers, lifetime=2.5)
        eventually(lambda: after.uid in runs_by_workload(pg_engine))
    runs = runs_by_workload(pg_engine)
    assert set(runs) == {after.uid}  # the job before the config existed is not backfilled
    assert_run_matches(runs[after.uid], after, ci_config_id(pg_engine, "late"))


def cycles_done(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if r.getMessage().startswith("cycle done"))


def test_idle_daemon_cycles_write_zero_rows(
    sim: SimulatedArc,
    make_settings: Any,
    pg_engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="snapshotter.sync.cycle")
    ars = sim.create_runner_set("pool")
    ers = sim.create_ephemeral_runner_set(ars, replicas=1)
    sim.pod_running(sim.register(sim.create_runner(ers)))
    settings = make_settings(interval_seconds=1)
    with running_daemon(settings):
        eventually(lambda: rows(pg_engine, "github_ephemeral_runner_states"))
    before = write_counters(pg_engine)  # the daemon has stopped and closed its connections
    assert before["github_ephemeral_runner_states"][0] == 1
    caplog.clear()
    with running_daemon(settings):  # a restart, then cycles over an unchanged cluster
        eventually(lambda: cycles_done(caplog) >= 4)
    assert write_counters(pg_engine) == before


def test_arc_012_succeeded_and_invalid_pod_runners(
    sim: SimulatedArc,
    make_settings: Any,
    pg_engine: Engine,
) -> None:
    sim.version = "0.12"
    ars = sim.create_runner_set("pool")
    ers = sim.create_ephemeral_runner_set(ars)
    broken = sim.fail_invalid_pod(sim.register(sim.create_runner(ers)))
    with running_daemon(make_settings(workflow_configs=[CI_CONFIG])):
        runner = sim.start_job(sim.pod_running(sim.register(sim.create_runner(ers))), Job.new())
        eventually(
            lambda: any(
                s["job_id"] is None and s["job_request_id"]
                for s in rows(pg_engine, "github_ephemeral_runner_states")
            )
        )
        sim.succeed(runner)  # 0.12: Succeeded first, deleted later by the next scale patch
        eventually(lambda: runs_by_workload(pg_engine))
        sim.delete_runner(runner)
        eventually(
            lambda: any(s["is_deleted"] for s in rows(pg_engine, "github_ephemeral_runner_states"))
        )
    states = {s["uid"]: s for s in rows(pg_engine, "github_ephemeral_runner_states")}
    done = states[runner["metadata"]["uid"]]
    assert (done["phase"], done["completion_source"], done["is_deleted"]) == (
        "Succeeded",
        "phase",
        True,
    )
    failed = states[broken["metadata"]["uid"]]
    assert (failed["phase"], failed["reason"], failed["is_completed"]) == (
        "Failed",
        "InvalidPod",
        True,
    )
    [run] = rows(pg_engine, "github_workflow_runs")
    assert (run["workload_uid"], run["completion_source"], run["job_id"]) == (
        done["uid"],
        "phase",
        None,
    )
    pool = rows(pg_engine, "github_runner_sets")[0]
    assert pool["failed_runners"] == 1
