"""Retention without a database: its configuration, the policy the daemon derives
from it, `--retention` on the command line, and the thread's leadership rules."""

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from snapshotter import assembly, cli
from snapshotter.db import retention
from snapshotter.errors import ConfigError, ExitCode, StoreFenced
from snapshotter.ops.stats import SyncStats
from snapshotter.settings import Settings, load_settings
from snapshotter.sync.retention import Policy, RetentionWorker, run_pass

NOW = datetime(2026, 12, 1, tzinfo=UTC)
HISTORY, REJECTS, RUNNERS = retention.TABLES


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SNAPSHOTTER_"):
            monkeypatch.delenv(name)


def test_every_bad_retention_value_is_listed_with_its_key(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        """
retention:
  history_days: 0
  rejects_days: soon
  runner_states_days: true
  period_seconds: 5
  batch_size: 1
  pause_seconds: -1
  keep: forever
"""
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    keys = sorted(p.split(":", 1)[0] for p in info.value.problems)
    assert keys == sorted(
        f"retention.{k}"
        for k in (
            "history_days",
            "rejects_days",
            "runner_states_days",
            "period_seconds",
            "batch_size",
            "pause_seconds",
            "keep",
        )
    )


def test_defaults_keep_history_90_days_rejects_30_and_runner_states_forever() -> None:
    policy = assembly.retention_policy(Settings())

    assert policy.ages == {HISTORY: timedelta(days=90), REJECTS: timedelta(days=30)}
    assert Settings().retention.enabled


def test_null_keeps_a_table_and_a_number_of_days_limits_it(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("retention:\n  history_days: null\n  runner_states_days: 400\n")

    policy = assembly.retention_policy(load_settings(path))

    assert policy.ages == {REJECTS: timedelta(days=30), RUNNERS: timedelta(days=400)}


def test_retention_without_once_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--retention"]) == ExitCode.USAGE
    assert "--retention goes with --once" in capsys.readouterr().err


class FakePurger:
    """Every table always has one old row left; counts the batches."""

    def __init__(self, *, fenced: bool = False, batches: int | None = None) -> None:
        self.left = batches  # then nothing old is left
        self.batches: list[str] = []
        self.fenced = fenced
        self.closed = False

    def delete_batch(self, table: str, *, older_than: datetime, limit: int) -> retention.Deleted:
        assert older_than < NOW
        if self.fenced:
            raise StoreFenced("another replica leads")
        self.batches.append(table)
        if self.left is not None and len(self.batches) > self.left:
            return retention.Deleted(table, 0)
        return retention.Deleted(table, 1)

    def close(self) -> None:
        self.closed = True


def worker(purger: FakePurger, leading: threading.Event) -> RetentionWorker:
    return RetentionWorker(
        purger,
        Policy(ages={HISTORY: timedelta(days=1)}, batch_size=10, pause_seconds=0),
        clock=lambda: NOW,
        leading=leading.is_set,
        stats=SyncStats(),
        check_seconds=0.05,
    )


def test_the_thread_deletes_only_while_leading() -> None:
    purger, leading = FakePurger(), threading.Event()
    thread = worker(purger, leading)
    thread.start()
    try:
        threading.Event().wait(0.2)
        assert purger.batches == []  # a standby deletes nothing
        leading.set()
        for _ in range(50):
            if thread.passes:
                break
            threading.Event().wait(0.1)
    finally:
        thread.stop()
    assert thread.passes == 1
    assert purger.batches == [HISTORY]
    assert purger.closed


def test_a_fenced_pass_ends_quietly_and_the_thread_lives_on() -> None:
    purger, leading = FakePurger(fenced=True), threading.Event()
    leading.set()
    thread = worker(purger, leading)
    thread.start()
    try:
        threading.Event().wait(0.3)
        assert thread.is_alive()
    finally:
        thread.stop()
    assert thread.passes == 0
    assert "retention-crash" not in thread.stats.errors  # an expected end, not a bug


def test_each_batch_first_looks_for_a_moment_when_the_writer_is_idle() -> None:
    purger, asked = FakePurger(batches=3), []
    policy = Policy(ages={HISTORY: timedelta(days=1)}, batch_size=1, pause_seconds=0)

    def quiet() -> bool:
        asked.append(len(purger.batches))
        return True

    run_pass(purger, policy, clock=lambda: NOW, quiet=quiet)

    assert asked == [0, 1, 2, 3]  # before every batch (the last one finds nothing)
    assert purger.batches == [HISTORY] * 4
