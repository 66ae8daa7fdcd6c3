"""The command line: exit codes and messages, driven through `cli.main(argv)`."""

import os
from pathlib import Path

import pytest

from snapshotter import cli
from snapshotter.db import migrate
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
    head = migrate.head_revision()
    assert f"schema revision: {head} (head: {head})" in capsys.readouterr().out


def test_unreachable_database_is_a_startup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPSHOTTER_DATABASE__URL", "sqlite:////nonexistent-dir/x/y.db")
    assert cli.main(["db", "upgrade"]) == ExitCode.STARTUP


def test_missing_kubeconfig_is_a_startup_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"kubernetes:\n  kubeconfig: {tmp_path}/missing-kubeconfig\n")
    assert cli.main(["--config", str(path), "--once"]) == ExitCode.STARTUP


def error_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_an_environment_value_that_is_not_json_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SNAPSHOTTER_NAMESPACES", "[a")
    assert cli.main(["config", "check"]) == ExitCode.USAGE
    [line] = error_lines(capsys)
    assert line.startswith(
        "config error: environment variable SNAPSHOTTER_NAMESPACES: not valid JSON"
    )


def test_a_config_file_that_is_not_utf8_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b'cluster_name: "\xff\xfe"\n')
    assert cli.main(["--config", str(path), "config", "check"]) == ExitCode.USAGE
    assert error_lines(capsys) == [f"config error: {path}: not UTF-8 text (byte 15)"]


def test_duplicate_keys_in_the_file_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("watch:\n  enabled: true\nwatch:\n  enabled: false\nlogging: {level: INFO}\n")
    assert cli.main(["--config", str(path), "config", "check"]) == ExitCode.USAGE
    assert error_lines(capsys) == [f"config error: {path}: watch (line 3): the key appears twice"]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (
            "postgresql://u:SECRET@db:abc/lens",
            "not a valid database URL (the port is not a number)",
        ),
        ("postgresql+nosuch://u:SECRET@db/lens", "driver 'nosuch' is not installed"),
        ("postgresql://u:SEC@RET@db/lens", "the user or password contains '@'"),
        ("mysql://u:SECRET@db/lens", "must be a postgresql:// or sqlite:// SQLAlchemy URL"),
    ],
)
def test_a_bad_database_url_is_a_config_error_that_hides_the_password(
    url: str, problem: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SNAPSHOTTER_DATABASE__URL", url)
    assert cli.main(["db", "upgrade"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert problem in err
    assert "SECRET" not in err
    assert "RET@" not in err


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://lens@127.0.0.1:1/lens?password=SECRET",
        "postgresql://lens:SECRET@127.0.0.1:1/lens",
    ],
)
def test_an_unreachable_database_is_one_line_without_the_password(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SNAPSHOTTER_DATABASE__URL", url)
    assert cli.main(["db", "upgrade"]) == ExitCode.STARTUP
    err = capsys.readouterr().err
    [line] = [entry for entry in err.splitlines() if "ERROR" in entry]
    assert "cannot start: upgrading the schema failed: connection to server" in line
    assert "SECRET" not in err
