"""The command line: exit codes and messages, driven through `cli.main(argv)`."""

import logging
import os
from importlib.metadata import version
from pathlib import Path

import pytest

from snapshotter import cli, logconfig
from snapshotter.db import migrate
from snapshotter.errors import ExitCode
from snapshotter.settings import load_settings


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


def test_a_missing_kubeconfig_is_named_and_once_creates_no_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"kubernetes:\n  kubeconfig: {tmp_path}/missing-kubeconfig\n")
    assert cli.main(["--config", str(path), "--once"]) == ExitCode.STARTUP
    [line] = [entry for entry in error_lines(capsys) if "ERROR" in entry]
    assert line.endswith(f"cannot start: kubeconfig {tmp_path}/missing-kubeconfig: no such file")
    assert not (tmp_path / "snapshotter.db").exists()  # checked before the store opens


def test_a_missing_kubeconfig_variable_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path}/a:{tmp_path}/b")
    assert cli.main(["finalizers", "remove"]) == ExitCode.STARTUP
    assert f"kubeconfig {tmp_path}/a:{tmp_path}/b ($KUBECONFIG): no such file" in (
        capsys.readouterr().err
    )


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


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == ExitCode.OK
    assert capsys.readouterr().out == f"snapshotter {version('github-runners-snapshotter')}\n"


def test_help_names_the_environment_variables_and_the_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == ExitCode.OK
    out = capsys.readouterr().out
    for text in ("SNAPSHOTTER_CONFIG", "SNAPSHOTTER_<SECTION>__<KEY>", "SNAPSHOTTER_DATABASE__URL"):
        assert text in out
    codes = out.split("exit codes:", 1)[1].splitlines()
    assert [line.split()[0] for line in codes if line.strip()] == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize(
    ("command", "action", "text"),
    [
        ("db", "upgrade", "create the schema or upgrade it"),
        ("db", "current", "print the database's schema revision"),
        ("config", "check", "validate the configuration"),
        ("finalizers", "remove", "remove the finalizer"),
    ],
)
def test_every_action_has_help(
    command: str, action: str, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    [line] = [line for line in capsys.readouterr().out.splitlines() if line.split()[:1] == [action]]
    assert text in line


def test_an_environment_problem_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("database:\n  timeout_seconds: 0\n")
    monkeypatch.setenv("SNAPSHOTTER_INTERVAL_SECONDS", "fast")
    monkeypatch.setenv("SNAPSHOTTER_NAMESPACES", '["ok", "Not_A_Label"]')
    assert cli.main(["--config", str(path), "config", "check"]) == ExitCode.USAGE
    assert sorted(error_lines(capsys)) == [
        "config error: database.timeout_seconds: Input should be greater than or equal to 1 "
        "(got 0)",
        "config error: environment variable SNAPSHOTTER_INTERVAL_SECONDS: Input should be a "
        "valid number, unable to parse string as a number (got 'fast')",
        "config error: environment variable SNAPSHOTTER_NAMESPACES: Value error, 'Not_A_Label' "
        "is not a namespace name (a DNS-1123 label: a-z, 0-9, -) (got 'Not_A_Label')",
    ]


@pytest.mark.parametrize(
    ("argv", "variable", "value", "formatter"),
    [
        (["--log-level", "debug", "--log-format", "JSON"], None, None, logconfig.JsonFormatter),
        ([], "SNAPSHOTTER_LOGGING__LEVEL", "debug", logging.Formatter),
    ],
)
def test_log_level_and_format_in_any_case(
    argv: list[str],
    variable: str | None,
    value: str | None,
    formatter: type[logging.Formatter],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if variable and value:
        monkeypatch.setenv(variable, value)
    assert cli.main([*argv, "config", "check"]) == ExitCode.OK
    root = logging.getLogger()
    assert root.level == logging.DEBUG
    assert isinstance(root.handlers[0].formatter, formatter)
    capsys.readouterr()


def test_log_level_in_the_file_in_any_case(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("logging:\n  level: debug\n  format: Text\n")
    settings = load_settings(path)
    assert (settings.logging.level, settings.logging.format) == ("DEBUG", "text")


def test_a_planned_upgrade_on_sqlite_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["db", "upgrade", "--sql"]) == ExitCode.USAGE
    assert error_lines(capsys) == [
        "snapshotter: error: db upgrade --sql needs PostgreSQL (database.url): SQLite's "
        "schema changes cannot be rolled back, so they cannot be planned"
    ]
    assert not (tmp_path / "snapshotter.db").exists()
