"""`snapshotter rejects list|retry` on PostgreSQL: what the database refused is shown,
and a retry is requested from the leader (SPEC §4.8)."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from snapshotter import cli
from snapshotter.db.store import Store
from snapshotter.diff.changes import RejectedObject
from tests.support.daemon_process import database_url
from tests.support.engine_harness import Harness


def test_rejects_are_listed_and_a_retry_is_requested(
    pg_engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = Store(pg_engine, cluster_name="", timeout=30)
    refused = RejectedObject(
        "ephemeralrunners", "u1", "arc-runners", "pool-runner-x", "41", "value too long"
    )
    store.reject(refused, payload=[], now=datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    config = tmp_path / "snapshotter.yaml"
    config.write_text("{}\n")
    monkeypatch.setenv("SNAPSHOTTER_DATABASE__URL", database_url(pg_engine))

    assert cli.main(["--config", str(config), "rejects", "list"]) == 0
    listed = capsys.readouterr().out
    assert "1 rejected objects:" in listed
    assert "ephemeralrunners arc-runners/pool-runner-x uid=u1 rv=41" in listed
    assert "value too long" in listed
    assert not store.retry_requested()

    assert cli.main(["--config", str(config), "rejects", "retry"]) == 0
    assert capsys.readouterr().out.strip() == "retry requested for 1 rejected objects"
    assert store.retry_requested()
    assert cli.main(["--config", str(config), "rejects", "list"]) == 0
    assert "retry requested" in capsys.readouterr().out

    leader = Harness(pg_engine, clock=lambda: datetime(2026, 12, 1, 12, 5, tzinfo=UTC))
    leader.writer.request_retry()
    leader.drain()  # the retry pass: this reject has nothing to replay, and stays
    assert [r.uid for r in store.load_rejects()] == ["u1"]
    assert not store.retry_requested()  # the request is done, not asked again and again
    leader.close()
    store.close()
