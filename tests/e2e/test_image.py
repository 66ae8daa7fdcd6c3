"""The container image as shipped: built by `make image`'s own script (hack/image.sh)
and run the way a cluster runs it, read-only as uid 10001 with only /tmp writable,
against the test API server and PostgreSQL (`--network host`: both listen on
127.0.0.1).

The first build on a machine makes the base image and downloads every dependency
(about 3 minutes); later ones reuse podman's layer cache (seconds).
"""

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from sqlalchemy import Engine

from snapshotter.errors import ExitCode
from tests.conftest import skip_or_fail
from tests.support.apiserver import REPO, TestCluster
from tests.support.arc_sim import Job, SimulatedArc
from tests.support.daemon_process import database_url
from tests.support.db_rows import rows
from tests.support.postgres import free_port
from tests.support.samples_loader import load_samples
from tests.support.waiting import eventually

IMAGE = "github-runners-snapshotter:local"
PODMAN = REPO / "hack" / "podman.sh"  # podman with the repository's containers.conf
CONFIG_DIR = "/etc/snapshotter"


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PODMAN), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def image() -> str:
    """The image, built (or brought up to date) by the script behind `make image`."""
    missing = [tool for tool in ("podman", "runc", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        skip_or_fail(f"{', '.join(missing)} not installed: run hack/setup.sh")
    build = subprocess.run(
        [str(REPO / "hack" / "image.sh")], capture_output=True, text=True, timeout=1200, check=False
    )
    assert build.returncode == 0, build.stderr
    return IMAGE


def mounted_config(tmp_path: Path, kube: TestCluster, namespace: str, **extra: Any) -> list[str]:
    """`podman run` options that mount a config and the kubeconfig it names, read-only."""
    kubeconfig = tmp_path / "kubeconfig"
    shutil.copyfile(kube.kubeconfig(), kubeconfig)
    config = tmp_path / "snapshotter.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "cluster_name": "e2e",
                "interval_seconds": 1,
                "namespaces": [namespace],
                "kubernetes": {"kubeconfig": f"{CONFIG_DIR}/kubeconfig"},
                **extra,
            }
        )
    )
    for path in (kubeconfig, config):
        path.chmod(0o644)  # readable by uid 10001 (the tests may run as root)
    return [
        f"--volume={kubeconfig}:{CONFIG_DIR}/kubeconfig:ro",
        f"--volume={config}:{CONFIG_DIR}/snapshotter.yaml:ro",
    ]


def run_options(engine: Engine) -> list[str]:
    """How a cluster runs it: non-root, nothing writable but a /tmp tmpfs (podman's
    default tmpfs on /run and /var/tmp is turned off, so nothing else can be written)."""
    return [
        "--read-only",
        "--read-only-tmpfs=false",
        "--tmpfs=/tmp:rw,size=16m,mode=1777",
        "--user=10001",
        "--network=host",
        f"--env=SNAPSHOTTER_DATABASE__URL={database_url(engine)}",
    ]


@contextmanager
def container_name() -> Iterator[str]:
    """A container name that is removed at the end, whatever happened."""
    name = f"snapshotter-test-{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        podman("rm", "--force", "--ignore", "--time=0", name)


def test_image_is_non_root_without_pip_and_labelled(image: str) -> None:
    [info] = yaml.safe_load(podman("image", "inspect", image).stdout)
    assert info["Config"]["User"] == "10001:10001"
    labels = info["Config"]["Labels"]
    for key in ("title", "description", "source", "licenses", "version", "revision"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    found = "import importlib.util as u; print([m for m in {!r} if u.find_spec(m)])"
    probe = podman(
        "run", "--rm", "--read-only", "--entrypoint=/opt/venv/bin/python", image,
        "-c", found.format(("pip", "setuptools", "wheel")),
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]"


def test_image_once_writes_rows_and_exits_0(
    image: str, kube: TestCluster, namespace: str, pg_engine: Engine, tmp_path: Path
) -> None:
    load_samples(kube.rest(), {"arc-runners": namespace, "arc-payments": namespace})
    with container_name() as name:
        result = podman(
            "run", f"--name={name}", *run_options(pg_engine),
            *mounted_config(tmp_path, kube, namespace),
            image, "--config", f"{CONFIG_DIR}/snapshotter.yaml", "--once",
        )  # fmt: skip
    assert result.returncode == ExitCode.OK, result.stderr
    assert "runner states: 3 rows written" in result.stdout
    assert len(rows(pg_engine, "github_ephemeral_runner_states")) == 3
    assert {r["name"] for r in rows(pg_engine, "github_runner_sets")} == {
        "arc-linux-x64",
        "payments-api-gpu",
    }


def http_status(port: int, path: str) -> int:
    try:
        return urllib3.request(
            "GET", f"http://127.0.0.1:{port}{path}", timeout=2, retries=False
        ).status
    except urllib3.exceptions.HTTPError:
        return 0


def test_image_daemon_captures_jobs_and_stops_cleanly_on_sigterm(
    image: str,
    kube: TestCluster,
    namespace: str,
    sim: SimulatedArc,
    pg_engine: Engine,
    tmp_path: Path,
) -> None:
    ers = sim.create_ephemeral_runner_set(sim.create_runner_set("pool"), replicas=3)
    port = free_port()
    workflow_config = {"name": "ci", "runner_set_name": "pool", "workflow_filter": "ci.yaml"}
    config = mounted_config(
        tmp_path, kube, namespace, metrics={"port": port}, workflow_configs=[workflow_config]
    )
    with container_name() as name:
        started = podman(
            "run", "--detach", f"--name={name}", *run_options(pg_engine), *config,
            image, "--config", f"{CONFIG_DIR}/snapshotter.yaml",
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        eventually(lambda: http_status(port, "/readyz") == 200, timeout=60)

        done = sim.run_jobs(ers, [Job.new() for _ in range(6)], lifetimes=[2.0] * 6, concurrency=3)
        eventually(lambda: len(rows(pg_engine, "github_workflow_runs")) == len(done))
        runs = {r["workload_uid"]: r for r in rows(pg_engine, "github_workflow_runs")}
        assert set(runs) == {d.uid for d in done}
        for finished in done:
            assert finished.job is not None
            run = runs[finished.uid]
            assert (run["github_run_id"], run["job_id"]) == (
                finished.job.run_id,
                finished.job.job_id,
            )
            assert (run["workflow_name"], run["head_branch"]) == ("ci.yaml", "main")

        stopped = podman("stop", "--time=60", name, timeout=90)  # SIGTERM, then waits
        assert stopped.returncode == 0, stopped.stderr
        state = podman("inspect", "--format={{.State.ExitCode}}", name).stdout.strip()
        logs = podman("logs", name)
    assert state == str(ExitCode.OK.value), logs.stdout + logs.stderr
    assert "received SIGTERM, stopping" in logs.stderr
