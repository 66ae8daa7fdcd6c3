"""Finalizer capture (optional): exact final states across an unclean stop.

The daemon runs as a process and is killed with SIGKILL (no cleanup) while runners
finish: they wait, held by its finalizer, and are recorded exactly when it returns.
The shipped MutatingAdmissionPolicy also holds runners created while it is down.
The removal command and a clean shutdown release every runner.
"""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine

from snapshotter.errors import ExitCode
from snapshotter.sync.finalizers import FINALIZER
from tests.e2e.conftest import database_url
from tests.support.apiserver import REPO, TestCluster
from tests.support.arc_sim import Job, SimulatedArc
from tests.support.db_rows import rows
from tests.support.waiting import eventually

SNAPSHOTTER = Path(sys.executable).parent / "snapshotter"
DEPLOY = REPO / "config" / "deploy"
POLICY = DEPLOY / "finalizer-capture-policy.yaml"


@pytest.fixture(scope="session")
def finalizer_rbac(kube: TestCluster) -> None:
    """The shipped extra RBAC (patch on ephemeralrunners) for the snapshotter account."""
    kube.apply_manifest(DEPLOY / "rbac-finalizer-capture.yaml")


@pytest.fixture
def ers(sim: SimulatedArc) -> dict[str, Any]:
    return sim.create_ephemeral_runner_set(sim.create_runner_set("pool"))


@pytest.fixture
def admission_policy(
    kube: TestCluster, namespace: str, sim: SimulatedArc, ers: dict[str, Any]
) -> Iterator[None]:
    """The shipped policy, its binding narrowed to this test's namespace, in force."""
    selector = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
    binding = next(
        d
        for d in yaml.safe_load_all(POLICY.read_text())
        if d["kind"] == "MutatingAdmissionPolicyBinding"
    )
    kube.apply_manifest(
        POLICY,
        {
            "MutatingAdmissionPolicyBinding": {
                "spec": {**binding["spec"], "matchResources": selector}
            }
        },
    )
    eventually(lambda: FINALIZER in sim.create_runner(ers, dry_run=True)["metadata"]["finalizers"])
    yield
    kube.delete_manifest(POLICY)


class DaemonProcess:
    def __init__(self, kube: TestCluster, namespace: str, engine: Engine, tmp_path: Path) -> None:
        self.config = tmp_path / "snapshotter.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "interval_seconds": 60,
                    "namespaces": [namespace],
                    "kubernetes": {"kubeconfig": str(kube.kubeconfig())},
                    "finalizer_capture": {"enabled": True},
                    "workflow_configs": [{"name": "all-jobs", "runner_set_name": ""}],
                }
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSHOTTER_")}
        self.env = {**env, "SNAPSHOTTER_DATABASE__URL": database_url(engine)}
        self.log = tmp_path / "daemon.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SNAPSHOTTER), "--config", str(self.config), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def start(self) -> None:
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [str(SNAPSHOTTER), "--config", str(self.config)], env=self.env, stderr=out
            )

    def signal(self, signum: signal.Signals) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def daemon(
    kube: TestCluster, namespace: str, pg_engine: Engine, tmp_path: Path, finalizer_rbac: None
) -> Iterator[DaemonProcess]:
    process = DaemonProcess(kube, namespace, pg_engine, tmp_path)
    yield process
    process.kill()


def held(sim: SimulatedArc, runner: dict[str, Any]) -> bool:
    current = sim.get_runner(runner["metadata"]["name"])
    return current is not None and FINALIZER in current["metadata"].get("finalizers", [])


def busy_runner(sim: SimulatedArc, ers: dict[str, Any]) -> dict[str, Any]:
    return sim.start_job(sim.pod_running(sim.register(sim.create_runner(ers))), Job.new())


def test_runners_wait_for_a_killed_daemon_and_are_recorded_exactly(
    sim: SimulatedArc,
    ers: dict[str, Any],
    daemon: DaemonProcess,
    pg_engine: Engine,
    admission_policy: None,
) -> None:
    daemon.start()
    eventually(lambda: rows(pg_engine, "github_runner_sets"))
    seen = [busy_runner(sim, ers) for _ in range(3)]
    eventually(lambda: all(held(sim, r) for r in seen))
    eventually(
        lambda: (
            sum(bool(s["job_id"]) for s in rows(pg_engine, "github_ephemeral_runner_states")) == 3
        )
    )
    daemon.kill()  # SIGKILL: no shutdown, the finalizers stay

    for runner in seen:  # their jobs end while the daemon is down
        sim.delete_runner(runner)
    unseen = [busy_runner(sim, ers) for _ in range(2)]  # born and gone inside the gap,
    for runner in unseen:  # held by the admission policy
        sim.delete_runner(runner)
    waiting = {
        r["metadata"]["uid"]: sim.get_runner(r["metadata"]["name"]) for r in [*seen, *unseen]
    }
    assert all(w is not None and w["metadata"].get("deletionTimestamp") for w in waiting.values())

    daemon.start()
    eventually(lambda: len(rows(pg_engine, "github_workflow_runs")) == 5)
    eventually(
        lambda: all(sim.get_runner(r["metadata"]["name"]) is None for r in [*seen, *unseen])
    )  # released once recorded
    runs = {r["workload_uid"]: r for r in rows(pg_engine, "github_workflow_runs")}
    assert set(runs) == set(waiting)
    for uid, last in waiting.items():
        assert last is not None
        run = runs[uid]
        assert run["completion_source"] == "deleted"
        # the deletionTimestamp has whole seconds; a job seen within that second moves
        # the completion up to it, never before the job
        deleted = datetime.fromisoformat(last["metadata"]["deletionTimestamp"])
        assert deleted <= run["workload_completed_at"] < deleted + timedelta(seconds=1)
        assert run["job_assigned_at"] <= run["workload_completed_at"]
        assert run["github_run_id"] == last["status"]["workflowRunId"]
        assert run["job_id"] == last["status"]["jobId"]
    assert daemon.signal(signal.SIGTERM) == ExitCode.OK


def test_removal_command_and_clean_shutdown_release_every_runner(
    sim: SimulatedArc,
    ers: dict[str, Any],
    daemon: DaemonProcess,
    pg_engine: Engine,
) -> None:
    daemon.start()
    eventually(lambda: rows(pg_engine, "github_runner_sets"))
    live = [sim.pod_running(sim.register(sim.create_runner(ers))) for _ in range(2)]
    eventually(lambda: all(held(sim, r) for r in live))
    daemon.kill()
    result = daemon.command("finalizers", "remove")
    assert result.returncode == ExitCode.OK, result.stderr
    assert result.stdout.strip() == f"removed finalizer {FINALIZER} from 2 runners"
    assert not any(held(sim, r) for r in live)

    daemon.start()  # it puts the finalizer back on live runners ...
    eventually(lambda: all(held(sim, r) for r in live))
    assert daemon.signal(signal.SIGTERM) == ExitCode.OK  # ... and removes it on a clean stop
    assert not any(held(sim, r) for r in live)
    assert "released finalizers runners=2" in daemon.log.read_text()
