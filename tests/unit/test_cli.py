"""The command line: exit codes and messages, driven through `cli.main(argv)`."""

import os
from pathlib import Path

import pytest

from snapshotter import cli
from snapshotter.errors import ExitCode


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("SNAPSHOTTER_") or name == "KUBECONFIG":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_bad_config_exits_2_listing_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("interval_seconds: fast\nnope: 1\n")
    assert cli.main(["--config", str(path), "--once"]) == ExitCode.USAGE
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "config error: interval_seconds: Input should be a valid number, unable to parse "
        "string as a number (got 'fast')",
        "config error: nope: unknown key",
    ]


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--no-such-flag"])
    assert info.value.code == ExitCode.USAGE


def test_config_check_prints_the_effective_config_with_secrets_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SNAPSHOTTER_DATABASE__URL", "postgresql://lens:s3cret@db/lens")
    assert cli.main(["config", "check"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert '"interval_seconds": 10.0' in out
    assert "s3cret" not in out


def test_db_upgrade_creates_the_embedded_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["db", "upgrade"]) == ExitCode.OK
    assert (tmp_path / "snapshotter.db").exists()
    assert "schema revision: 0002 (head: 0002)" in capsys.readouterr().out


def test_unreachable_database_is_a_startup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPSHOTTER_DATABASE__URL", "sqlite:////nonexistent-dir/x/y.db")
    assert cli.main(["db", "upgrade"]) == ExitCode.STARTUP


def test_missing_kubeconfig_is_a_startup_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"kubernetes:\n  kubeconfig: {tmp_path}/missing-kubeconfig\n")
    assert cli.main(["--config", str(path), "--once"]) == ExitCode.STARTUP
