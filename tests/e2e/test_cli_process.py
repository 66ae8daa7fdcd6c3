"""The `snapshotter` console script as a process: signals and exit codes."""

import os
import signal
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import yaml
from sqlalchemy import Engine

from snapshotter.cli import DISTRIBUTION
from snapshotter.errors import ExitCode
from tests.support.apiserver import NOBODY_USER, TestCluster
from tests.support.daemon_process import database_url
from tests.support.db_rows import refuse_inserts, rows
from tests.support.samples_loader import load_samples
from tests.support.waiting import eventually

SNAPSHOTTER = Path(sys.executable).parent / "snapshotter"


def config(tmp_path: Path, kube: TestCluster, namespace: str, user: str = "snapshotter") -> Path:
    path = tmp_path / "snapshotter.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "interval_seconds": 1,
                "namespaces": [namespace],
                "kubernetes": {"kubeconfig": str(kube.kubeconfig(user))},
            }
        )
    )
    return path


def environment(engine: Engine) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSHOTTER_")}
    return {**env, "SNAPSHOTTER_DATABASE__URL": database_url(engine)}


def once(config_file: Path, engine: Engine, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SNAPSHOTTER), "--config", str(config_file), "--once", *flags],
        env=environment(engine),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_sigterm_finishes_the_cycle_and_exits_0(
    kube: TestCluster,
    namespace: str,
    pg_engine: Engine,
    tmp_path: Path,
) -> None:
    load_samples(kube.rest(), {"arc-runners": namespace, "arc-payments": namespace})
    log_file = tmp_path / "snapshotter.log"
    with log_file.open("w") as log_out:
        process = subprocess.Popen(
            [str(SNAPSHOTTER), "--config", str(config(tmp_path, kube, namespace))],
            env=environment(pg_engine),
            stderr=log_out,
        )
    try:
        eventually(lambda: len(rows(pg_engine, "github_ephemeral_runner_states")) == 3)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == ExitCode.OK
    finally:
        process.kill()
        process.wait()
    log = log_file.read_text()
    assert "received SIGTERM, stopping" in log
    assert "stopped" in log.splitlines()[-1]


def test_forbidden_listing_is_a_startup_error(
    kube: TestCluster,
    namespace: str,
    pg_engine: Engine,
    tmp_path: Path,
) -> None:
    result = once(config(tmp_path, kube, namespace, NOBODY_USER), pg_engine)
    assert result.returncode == ExitCode.STARTUP
    assert "cannot list the ARC resources" in result.stderr
    assert "HTTP 403" in result.stderr


def test_a_failed_once_reconciliation_exits_4_and_writes_nothing(
    kube: TestCluster,
    namespace: str,
    pg_engine: Engine,
    tmp_path: Path,
) -> None:
    load_samples(kube.rest(), {"arc-runners": namespace, "arc-payments": namespace})
    refuse_inserts(pg_engine, "github_runner_set_history", "disk full")
    result = once(config(tmp_path, kube, namespace), pg_engine)
    assert result.returncode == ExitCode.ONCE_FAILED
    assert "reconciliation failed" in result.stderr
    assert "disk full" in result.stderr
    assert rows(pg_engine, "github_runner_sets") == []
    assert rows(pg_engine, "github_ephemeral_runner_states") == []


def test_version_and_a_planned_upgrade_on_sqlite_as_a_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSHOTTER_")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SNAPSHOTTER), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    shown = run("--version")
    assert (shown.returncode, shown.stdout) == (
        ExitCode.OK,
        f"snapshotter {version(DISTRIBUTION)}\n",
    )
    planned = run("db", "upgrade", "--sql")
    assert planned.returncode == ExitCode.USAGE
    [line] = planned.stderr.splitlines()
    assert line.startswith("snapshotter: error: db upgrade --sql needs PostgreSQL")
    assert list(tmp_path.iterdir()) == []
