"""Retention as an operator meets it: `--once` deletes nothing unless given
`--retention`, and the daemon trims old rows by itself at start-up."""

import signal
import subprocess
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, insert

from snapshotter.clock import utc_now
from snapshotter.db.tables import Base
from snapshotter.errors import ExitCode
from tests.e2e.test_cli_process import SNAPSHOTTER, config, environment, once
from tests.support.apiserver import TestCluster
from tests.support.db_rows import rows
from tests.support.samples_loader import load_samples
from tests.support.waiting import eventually

HISTORY = "github_runner_set_history"


def old_and_recent_history(engine: Engine) -> None:
    table = Base.metadata.tables[HISTORY]
    now = utc_now()
    with engine.begin() as conn:
        for uid, age in (("old", 91), ("older", 400), ("recent", 89)):
            values = {"runner_set_uid": uid, "observed_at": now - timedelta(days=age)}
            conn.execute(insert(table), [values])


def history_uids(engine: Engine) -> set[str]:
    return {r["runner_set_uid"] for r in rows(engine, HISTORY)}


def test_once_deletes_only_when_asked(
    kube: TestCluster, namespace: str, pg_engine: Engine, tmp_path: Path
) -> None:
    old_and_recent_history(pg_engine)
    config_file = config(tmp_path, kube, namespace)

    plain = once(config_file, pg_engine)

    assert plain.returncode == ExitCode.OK, plain.stderr
    assert {"old", "older", "recent"} <= history_uids(pg_engine)

    asked = once(config_file, pg_engine, "--retention")

    assert asked.returncode == ExitCode.OK, asked.stderr
    assert "retention: 2 rows deleted from github_runner_set_history" in asked.stdout
    assert "recent" in history_uids(pg_engine)
    assert not {"old", "older"} & history_uids(pg_engine)


def test_the_daemon_trims_old_rows_at_start_up(
    kube: TestCluster, namespace: str, pg_engine: Engine, tmp_path: Path
) -> None:
    load_samples(kube.rest(), {"arc-runners": namespace, "arc-payments": namespace})
    old_and_recent_history(pg_engine)
    log_file = tmp_path / "snapshotter.log"
    with log_file.open("w") as log_out:
        process = subprocess.Popen(
            [str(SNAPSHOTTER), "--config", str(config(tmp_path, kube, namespace))],
            env=environment(pg_engine),
            stderr=log_out,
        )
    try:
        eventually(lambda: not {"old", "older"} & history_uids(pg_engine))
        assert "recent" in history_uids(pg_engine)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == ExitCode.OK
    finally:
        process.kill()
        process.wait()
    assert "retention pass done github_runner_set_history=2" in log_file.read_text()
