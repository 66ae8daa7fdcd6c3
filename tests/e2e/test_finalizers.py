"""Finalizer capture (optional): exact final states across an unclean stop.

The daemon runs as a process and is killed with SIGKILL (no cleanup) while runners
finish: they wait, held by its finalizer, and are recorded exactly when it returns.
The shipped MutatingAdmissionPolicy also holds runners created while it is down.
The removal command and a clean shutdown release every runner.
"""

import signal
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from snapshotter.errors import ExitCode, KubeConflict
from snapshotter.kube.client import KubeClient, Listing, load_api_client
from snapshotter.kube.resources import Resource
from snapshotter.sync.finalizers import FINALIZER, release_all
from tests.support.apiserver import TestCluster
from tests.support.arc_sim import Job, SimulatedArc
from tests.support.daemon_process import DaemonProcess
from tests.support.db_rows import rows
from tests.support.waiting import eventually


@pytest.fixture
def daemon(
    kube: TestCluster, namespace: str, pg_engine: Engine, tmp_path: Path, finalizer_rbac: None
) -> Iterator[DaemonProcess]:
    process = DaemonProcess(
        kube, namespace, pg_engine, tmp_path, finalizer_capture={"enabled": True}
    )
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


def test_a_runner_committed_but_not_released_is_released_by_the_next_daemon(
    sim: SimulatedArc,
    ers: dict[str, Any],
    daemon: DaemonProcess,
    pg_engine: Engine,
) -> None:
    """A daemon killed between committing a runner's last state and removing its
    finalizer: the next list shows that state at the stored resourceVersion, which
    must not count as "nothing new" while the runner waits for us."""
    daemon.start()
    eventually(lambda: rows(pg_engine, "github_runner_sets"))
    runner = busy_runner(sim, ers)
    eventually(lambda: held(sim, runner))
    daemon.kill()
    sim.delete_runner(runner)  # Terminating, held by our finalizer
    result = daemon.command("--once")  # commits the last state; nothing releases it
    assert result.returncode == ExitCode.OK, result.stderr
    assert len(rows(pg_engine, "github_workflow_runs")) == 1
    assert held(sim, runner)

    daemon.start()
    eventually(lambda: sim.get_runner(runner["metadata"]["name"]) is None)
    assert len(rows(pg_engine, "github_workflow_runs")) == 1


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


class ArcRacesTheRelease:
    """The port `release_all` uses, on the real API server, with ARC deleting the
    runners (and removing its own finalizers) between the list and our patches."""

    def __init__(self, kube: KubeClient, sim: SimulatedArc, runners: list[dict[str, Any]]) -> None:
        self.kube, self.sim, self.runners = kube, sim, runners
        self.conflicts = 0

    def list_all(self, resource: Resource, namespace: str | None = None) -> Listing:
        listing = self.kube.list_all(resource, namespace)
        while self.runners:
            self.sim.delete_runner(self.runners.pop())
        return listing

    def json_patch(
        self, resource: Resource, namespace: str, name: str, operations: list[dict[str, Any]]
    ) -> None:
        try:
            self.kube.json_patch(resource, namespace, name, operations)
        except KubeConflict:
            self.conflicts += 1
            raise


def test_release_goes_on_while_arc_changes_its_own_finalizers(
    kube: TestCluster, sim: SimulatedArc, ers: dict[str, Any], finalizer_rbac: None
) -> None:
    """ARC removing its finalizers races with ours being removed: a failed JSON-patch
    `test` (HTTP 422) is a conflict to retry after listing again, never a reason to
    stop at the first runner."""
    runners = [sim.pod_running(sim.register(sim.create_runner(ers))) for _ in range(6)]
    for runner in runners:
        sim.json_patch(
            runner, [{"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER}]
        )
    client = KubeClient(load_api_client(kubeconfig=kube.kubeconfig(), context=None))
    racing = ArcRacesTheRelease(client, sim, list(runners))
    try:
        assert release_all(racing, [sim.namespace]) == len(runners)
    finally:
        client.close()
    assert racing.conflicts == len(runners)  # every first patch met ARC's change
    eventually(lambda: not sim.list("ephemeralrunners"))  # nothing held back
