"""An adopted Lens database whose runner-state creation_timestamp is TIMESTAMP
(without time zone): adoption accepts it (same "time" family, never retyped), and
the name bookkeeping compares its values with Kubernetes' aware ones (the column
type, `UtcDateTime`, reads them as UTC)."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from snapshotter.db import migrate
from tests.support import arc_objects as arc
from tests.support import lens_schema
from tests.support.db_rows import rows
from tests.support.engine_harness import Harness
from tests.support.memory_source import MemorySource

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NAME = f"{lens_schema.POOL}-abcde-runner-r1"


@pytest.fixture
def adopted_naive(empty_pg_engine: Engine) -> Engine:
    lens_schema.create(empty_pg_engine)
    with empty_pg_engine.begin() as conn:
        conn.exec_driver_sql(
            "ALTER TABLE github_ephemeral_runner_states "
            "ALTER COLUMN creation_timestamp TYPE TIMESTAMP"
        )
    migrate.upgrade(empty_pg_engine)
    return empty_pg_engine


def test_an_older_runner_learned_late_on_a_naive_creation_column(adopted_naive: Engine) -> None:
    """As test_lens_engine's learned-late case: u2 (newer) holds the name; u1 comes
    from a list taken before. The holder's creation time is read back naive."""
    engine = adopted_naive
    ars = arc.runner_set(name=lens_schema.POOL, namespace=lens_schema.NAMESPACE, uid="ars", rv="1")
    ers = arc.ephemeral_runner_set(ars, uid="ers", rv="2")
    harness = Harness(engine, clock=lambda: NOW)
    harness.poll(MemorySource([ars, ers]))
    token = harness.begin_list()
    older = arc.with_job(arc.ephemeral_runner(ers, name=NAME, uid="u1", rv="15"))
    listed = MemorySource([ars, ers, older])
    listed.list_version = 14
    newer = arc.ephemeral_runner(ers, name=NAME, uid="u2", rv="20", created="2026-11-28T09:05:00Z")
    harness.event("ADDED", newer)
    harness.event("DELETED", arc.bumped(newer, "21"))
    harness.drain()
    harness.hand_list(listed, token=token)
    harness.drain()
    harness.poll(MemorySource([ars, ers]))

    runs = [r for r in rows(engine, "github_workflow_runs") if r["workload_uid"] == "u1"]
    assert len(runs) == 1
    assert rows(engine, "snapshotter_rejects") == []
    named = [r for r in rows(engine, "github_ephemeral_runner_states") if r["name"] == NAME]
    assert [r["uid"] for r in named] == ["u2"]


def test_lens_row_newer_than_a_new_runner_on_a_naive_creation_column(adopted_naive: Engine) -> None:
    """Lens's exporter holds a name with a runner created after the one the
    snapshotter now sees: the newer (Lens's) keeps the row, the older is left out."""
    engine = adopted_naive
    name = "gpu-runners-abcde-runner-bbbbb"  # Lens's row: created 2026-05-01 09:29
    ars = arc.runner_set(name=lens_schema.POOL, namespace=lens_schema.NAMESPACE, uid="ars", rv="1")
    ers = arc.ephemeral_runner_set(ars, uid="ers", rv="2")
    harness = Harness(engine, clock=lambda: NOW)
    older = arc.ephemeral_runner(ers, name=name, uid="u9", rv="10", created="2026-05-01T09:00:00Z")
    harness.poll(MemorySource([ars, ers, older]))

    named = [r["uid"] for r in rows(engine, "github_ephemeral_runner_states") if r["name"] == name]
    assert named == ["lens-er-0002"]
    assert rows(engine, "snapshotter_rejects") == []
