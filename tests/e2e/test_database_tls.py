"""TLS to PostgreSQL, as every managed PostgreSQL requires it, through the console script.

The server accepts only TLS with a password over TCP and presents a certificate of a
CA made for the test. The snapshotter verifies it against the CA file named in the
URL (`sslmode=verify-full&sslrootcert=FILE`, the file a pod mounts); a certificate
it cannot verify, or a server without TLS where the URL requires it, stops it at
start: exit 3, one line naming the problem, no traceback, never the password.
"""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import yaml

from snapshotter.db import engine as db_engine
from snapshotter.db import migrate
from snapshotter.errors import ExitCode
from tests.conftest import skip_or_fail
from tests.support.apiserver import TestCluster
from tests.support.db_rows import rows
from tests.support.postgres import PostgresServer, find_bindir
from tests.support.samples_loader import load_samples
from tests.support.tls import CertificateAuthority, make_ca

SNAPSHOTTER = Path(sys.executable).parent / "snapshotter"


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def tls_postgres(
    authority: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PostgresServer]:
    bindir = find_bindir()
    if bindir is None:
        skip_or_fail("PostgreSQL binaries not found (set PG_BINDIR or run hack/setup.sh)")
    certificate = authority.issue_server_certificate(tmp_path_factory.mktemp("server"))
    server = PostgresServer(bindir, tls=certificate)
    server.start()
    yield server
    server.stop()


def tls_url(url: str, ca: Path, mode: str = "verify-full") -> str:
    return f"{url}?sslmode={mode}&sslrootcert={ca}"


def snapshotter(
    *args: str, url: str, cwd: Path, config: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSHOTTER_")}
    env["SNAPSHOTTER_DATABASE__URL"] = url
    options = ["--config", str(config)] if config else []
    return subprocess.run(
        [str(SNAPSHOTTER), *options, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def config_file(tmp_path: Path, kube: TestCluster, namespace: str) -> Path:
    path = tmp_path / "snapshotter.yaml"
    settings = {"namespaces": [namespace], "kubernetes": {"kubeconfig": str(kube.kubeconfig())}}
    path.write_text(yaml.safe_dump(settings))
    return path


def problem_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr without the effective configuration that `--once` logs before it starts."""
    return [line for line in result.stderr.splitlines() if "effective config" not in line]


def test_verify_full_with_the_mounted_ca_works(
    kube: TestCluster,
    namespace: str,
    tls_postgres: PostgresServer,
    authority: CertificateAuthority,
    tmp_path: Path,
) -> None:
    load_samples(kube.rest(), {"arc-runners": namespace, "arc-payments": namespace})
    url = tls_url(tls_postgres.create_database("verified"), authority.cert)
    upgrade = snapshotter("db", "upgrade", url=url, cwd=tmp_path)
    head = migrate.head_revision()
    assert (upgrade.returncode, upgrade.stdout) == (0, f"schema revision: {head} (head: {head})\n")
    once = snapshotter(
        "--once", url=url, cwd=tmp_path, config=config_file(tmp_path, kube, namespace)
    )
    assert once.returncode == ExitCode.OK, once.stderr
    assert "runner states: 3 rows written" in once.stdout
    engine = db_engine.make_engine(url)
    try:
        assert len(rows(engine, "github_ephemeral_runner_states")) == 3
    finally:
        engine.dispose()
    assert tls_postgres.password is not None
    for output in (upgrade.stdout, upgrade.stderr, once.stdout, once.stderr):
        assert tls_postgres.password not in output
    # what the snapshotter did went over TLS: the server refuses anything else
    with pytest.raises(psycopg2.OperationalError, match="no encryption"):
        psycopg2.connect(
            host="127.0.0.1",
            port=tls_postgres.port,
            user=tls_postgres.user,
            password=tls_postgres.password,
            sslmode="disable",
        )


@pytest.mark.parametrize("command", [["db", "upgrade"], ["--once"]])
def test_a_certificate_of_another_ca_stops_the_start_with_one_line(
    command: list[str],
    kube: TestCluster,
    namespace: str,
    tls_postgres: PostgresServer,
    tmp_path: Path,
) -> None:
    stranger = make_ca(tmp_path / "ca", "another CA")
    url = tls_url(tls_postgres.url(), stranger.cert)
    result = snapshotter(
        *command, url=url, cwd=tmp_path, config=config_file(tmp_path, kube, namespace)
    )
    assert result.returncode == ExitCode.STARTUP
    [line] = problem_lines(result)
    assert "cannot start:" in line
    assert "SSL error: certificate verify failed" in line
    assert tls_postgres.password is not None
    assert tls_postgres.password not in result.stdout + result.stderr
    assert not list(tmp_path.glob("*.db"))


def test_sslmode_require_against_a_server_without_tls_is_one_line(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = f"{postgres.url().replace('postgres@', 'postgres:SECRET@')}?sslmode=require"
    result = snapshotter("db", "upgrade", url=url, cwd=tmp_path)
    assert result.returncode == ExitCode.STARTUP
    [line] = problem_lines(result)
    assert "server does not support SSL, but SSL was required" in line
    assert "SECRET" not in result.stdout + result.stderr
