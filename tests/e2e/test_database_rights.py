"""A database user without the rights it needs: a one-line start-up error, exit 3.

Migrations, the upsert of YAML-declared configs and loading the state each need
rights; PostgreSQL's refusal must not surface as a traceback (exit 1). `--once`
checks Kubernetes before the database, so it runs against the test API server.
"""

import itertools
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, text

from snapshotter import cli
from snapshotter.errors import ExitCode
from tests.support.apiserver import TestCluster
from tests.support.postgres import PostgresServer

_roles = itertools.count()


def limited_role(server: PostgresServer, engine: Engine, *grants: str) -> str:
    """A role that can connect, with only the given grants; returns its URL."""
    name = f"limited{next(_roles)}"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"CREATE ROLE {name} LOGIN"))
        for grant in grants:
            conn.execute(text(f"GRANT {grant} TO {name}"))
    database = engine.url.database
    return f"postgresql://{name}@127.0.0.1:{server.port}/{database}"


@pytest.fixture
def config(kube: TestCluster, namespace: str, tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    settings = {
        "workflow_configs": [{"name": "ci", "runner_set_name": "pool"}],
        "namespaces": [namespace],
        "kubernetes": {"kubeconfig": str(kube.kubeconfig())},
    }
    path.write_text(yaml.safe_dump(settings))
    return path


def run(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["--config", str(config), *args])
    return code, capsys.readouterr().err


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SNAPSHOTTER_DATABASE__URL", "SNAPSHOTTER_CONFIG", "KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)


def test_no_right_to_create_tables(
    postgres: PostgresServer,
    empty_pg_engine: Engine,
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SNAPSHOTTER_DATABASE__URL", limited_role(postgres, empty_pg_engine))
    for args in (["db", "upgrade"], ["--once"]):
        code, err = run(config, capsys, *args)
        assert code == ExitCode.STARTUP
        [line] = err.splitlines()[-1:]
        assert (
            "cannot start: upgrading the schema failed: permission denied for schema public" in line
        )
        assert "Traceback" not in err


def test_no_right_to_read_write_configs_or_read_state(
    postgres: PostgresServer,
    pg_engine: Engine,
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    everything = "SELECT ON ALL TABLES IN SCHEMA public"
    configs = "INSERT, UPDATE ON github_workflow_configs"
    sequences = "USAGE ON ALL SEQUENCES IN SCHEMA public"
    steps = [
        ((), "reading the schema revision failed: permission denied for table alembic_version"),
        ((everything,), "writing declared workflow configs failed: permission denied"),
    ]
    for grants, problem in steps:
        monkeypatch.setenv("SNAPSHOTTER_DATABASE__URL", limited_role(postgres, pg_engine, *grants))
        code, err = run(config, capsys, "--once")
        assert code == ExitCode.STARTUP
        [line] = [entry for entry in err.splitlines() if "ERROR" in entry]
        assert "cannot start: " in line
        assert problem in line
        assert "Traceback" not in err
    with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("REVOKE SELECT ON github_ephemeral_runner_states FROM PUBLIC"))
    monkeypatch.setenv(
        "SNAPSHOTTER_DATABASE__URL",
        limited_role(
            postgres,
            pg_engine,
            configs,
            sequences,
            "SELECT ON alembic_version, "
            "github_workflow_configs, github_runner_sets, snapshotter_rejects",
        ),
    )
    code, err = run(config, capsys, "--once")
    assert code == ExitCode.STARTUP
    assert "cannot start: loading the persisted state" in err.splitlines()[-1]
    assert "permission denied for table github_ephemeral_runner_states" in err
    assert "Traceback" not in err
