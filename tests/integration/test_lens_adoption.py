"""The schema upgrade on a Primus Lens database: Lens's tables are adopted, never
changed, on real PostgreSQL, through the command line as an operator runs it."""

import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text

from snapshotter.db import migrate
from snapshotter.db.store import Store
from snapshotter.diff.changes import ChangeSet, RowWrite
from tests.support import lens_schema
from tests.support.daemon_process import database_url
from tests.support.store_rows import runner_row

OURS = {  # a few columns and indexes the upgrade adds to each adopted table
    "github_runner_sets": ({"cluster_name", "resource_version", "busy_runners"}, set()),
    "github_workflow_configs": (set(), set()),
    "github_workflow_runs": (
        {"cluster_name", "head_sha", "head_branch", "workflow_name", "github_run_number"},
        {"idx_github_workflow_runs_status"},
    ),
    "github_ephemeral_runner_states": (
        {"resource_version", "job_workflow_run_id", "completed_at", "cluster_name"},
        {"uq_github_ephemeral_runner_states_uid"},
    ),
}


@pytest.fixture
def lens_engine(empty_pg_engine: Engine) -> Engine:
    return empty_pg_engine


def snapshotter(engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSHOTTER_")}
    env["SNAPSHOTTER_DATABASE__URL"] = database_url(engine)
    command = [sys.executable, "-m", "snapshotter", *args]
    return subprocess.run(
        command, check=False, env=env, capture_output=True, text=True, timeout=120
    )


def columns(engine: Engine, table: str) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(table)}


def indexes(engine: Engine, table: str) -> set[str]:
    return {i["name"] for i in inspect(engine).get_indexes(table) if i["name"]}


def lens_only(schema: dict[str, Any], tables: tuple[str, ...]) -> dict[str, Any]:
    """Lens's own columns and indexes in a schema dump (what the upgrade must keep)."""
    lens_columns = {(t, c) for t in tables for c in lens_schema._lens_columns(t)}
    return {
        "columns": [c for c in schema["columns"] if (c[0], c[1]) in lens_columns],
        "indexes": [i for i in schema["indexes"] if i[0] in tables],
    }


@pytest.mark.parametrize(
    "tables",
    [lens_schema.TABLES, *((t,) for t in lens_schema.TABLES)],
    ids=["all", *lens_schema.TABLES],
)
def test_upgrade_adopts_lens_tables_and_changes_nothing_of_theirs(
    lens_engine: Engine, tables: tuple[str, ...]
) -> None:
    lens_schema.create(lens_engine, tables)
    rows_before = lens_schema.lens_rows(lens_engine, tables)
    schema_before = lens_schema.schema(lens_engine)

    upgraded = snapshotter(lens_engine, "db", "upgrade")

    assert upgraded.returncode == 0, upgraded.stderr
    assert lens_schema.lens_rows(lens_engine, tables) == rows_before
    after = lens_schema.schema(lens_engine)
    kept = lens_only(after, tables)
    assert kept["columns"] == lens_only(schema_before, tables)["columns"]
    assert set(lens_only(schema_before, tables)["indexes"]) <= set(kept["indexes"])
    for table in lens_schema.TABLES:  # adopted or created, each has what writes need
        added_columns, added_indexes = OURS[table]
        assert added_columns <= columns(lens_engine, table)
        assert added_indexes <= indexes(lens_engine, table)
    assert migrate.schema_is_current(lens_engine)

    again = snapshotter(lens_engine, "db", "upgrade")

    assert again.returncode == 0, again.stderr
    assert lens_schema.schema(lens_engine) == after
    assert lens_schema.lens_rows(lens_engine, tables) == rows_before


def test_adopted_run_table_keeps_lens_key_and_gets_the_dropped_columns_back(
    lens_engine: Engine,
) -> None:
    lens_schema.create(lens_engine)

    assert snapshotter(lens_engine, "db", "upgrade").returncode == 0

    uniques = {
        tuple(i["column_names"])
        for i in inspect(lens_engine).get_indexes("github_workflow_runs")
        if i["unique"]
    }
    assert uniques == {("runner_set_id", "workload_uid")}
    states = {
        i["name"]: i for i in inspect(lens_engine).get_indexes("github_ephemeral_runner_states")
    }
    uid_key = states["uq_github_ephemeral_runner_states_uid"]
    assert uid_key["unique"]
    assert "<> ''" in str(uid_key["dialect_options"]["postgresql_where"])
    assert states["idx_runner_states_ns_name"]["unique"]


def test_conflicting_rows_stop_the_upgrade_before_anything_changes(lens_engine: Engine) -> None:
    lens_schema.create(lens_engine)
    with lens_engine.begin() as conn:  # two of Lens's rows claim one runner uid
        conn.execute(
            text(
                "INSERT INTO github_ephemeral_runner_states (namespace, name, uid)"
                " VALUES ('arc-runners', 'gpu-runners-abcde-runner-zzzzz', 'lens-er-0001')"
            )
        )
    schema_before = lens_schema.schema(lens_engine)
    rows_before = lens_schema.lens_rows(lens_engine)

    refused = snapshotter(lens_engine, "db", "upgrade")

    assert refused.returncode == 3
    errors = [line for line in refused.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, refused.stderr  # one line, no traceback, no SQL
    assert refused.stderr.strip().endswith(errors[0])
    assert "cannot adopt table github_ephemeral_runner_states" in errors[0]
    assert "uid='lens-er-0001'" in errors[0]
    assert lens_schema.schema(lens_engine) == schema_before  # not even alembic_version
    assert lens_schema.lens_rows(lens_engine) == rows_before


def test_a_column_of_another_type_is_named_and_refused(lens_engine: Engine) -> None:
    lens_schema.create(lens_engine, ("github_workflow_runs",))
    with lens_engine.begin() as conn:
        conn.execute(text("ALTER TABLE github_workflow_runs ADD COLUMN job_assigned_at TEXT"))
    schema_before = lens_schema.schema(lens_engine)

    refused = snapshotter(lens_engine, "db", "upgrade")

    assert refused.returncode == 3
    assert "github_workflow_runs" in refused.stderr
    assert "job_assigned_at" in refused.stderr
    assert lens_schema.schema(lens_engine) == schema_before


def test_dry_run_prints_the_ddl_and_changes_nothing(lens_engine: Engine) -> None:
    lens_schema.create(lens_engine)
    schema_before = lens_schema.schema(lens_engine)

    planned = snapshotter(lens_engine, "db", "upgrade", "--sql")

    assert planned.returncode == 0, planned.stderr
    out = planned.stdout
    assert "ALTER TABLE github_workflow_runs ADD COLUMN head_sha VARCHAR(64);" in out
    assert "CREATE UNIQUE INDEX uq_github_ephemeral_runner_states_uid" in out
    assert "CREATE TABLE github_runner_set_history" in out
    assert "CREATE TABLE github_workflow_runs" not in out
    assert "DROP" not in out
    assert "-- nothing was run; schema revision: none" in out
    assert lens_schema.schema(lens_engine) == schema_before


def test_downgrade_releases_lens_tables_and_drops_only_its_own(lens_engine: Engine) -> None:
    lens_schema.create(lens_engine)
    schema_before = lens_schema.schema(lens_engine)
    rows_before = lens_schema.lens_rows(lens_engine)
    migrate.upgrade(lens_engine)

    migrate.downgrade(lens_engine, "base")

    after = lens_schema.schema(lens_engine)
    after["columns"] = [c for c in after["columns"] if c[0] != "alembic_version"]
    after["indexes"] = [i for i in after["indexes"] if i[0] != "alembic_version"]
    assert after == schema_before
    assert lens_schema.lens_rows(lens_engine) == rows_before


def test_store_writes_lens_zero_columns_and_reads_them_back_as_unknown(
    lens_engine: Engine,
) -> None:
    lens_schema.create(lens_engine)
    migrate.upgrade(lens_engine)
    store = Store(lens_engine, cluster_name="")
    state = store.load_state()
    # Lens's own rows (no resourceVersion) are not the snapshotter's to compare
    assert not state.runner_sets
    assert not state.runners
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    runner = replace(
        runner_row("new-uid", "gpu-runners-abcde-runner-ccccc", now, lens_schema.NAMESPACE),
        resource_requests={"cpu": 500, "amd.com/gpu": 8},
        resource_limits={"amd.com/gpu": 8},
    )  # a reused name

    store.apply(ChangeSet(now=now, runners=(RowWrite(runner, new=True),)))

    with lens_engine.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT uid, github_run_id, head_sha, phase, repository, completion_time"
                " FROM github_ephemeral_runner_states WHERE name = :n"
            ),
            {"n": runner.name},
        ).one()
    assert (stored.uid, stored.github_run_id, stored.head_sha) == ("new-uid", 0, "")
    assert stored.repository == "acme-corp/models"
    reloaded = Store(lens_engine, cluster_name="").load_state()
    assert reloaded.runners["new-uid"].github_run_id is None  # Lens's 0 means unknown
    assert reloaded.runners["new-uid"].head_sha is None
    assert reloaded.runners["new-uid"].resource_requests == {"cpu": 500, "amd.com/gpu": 8}
    # a later state whose template could not be read keeps what was recorded
    unread = replace(runner, resource_requests=None, resource_limits=None, resource_version="101")
    store.apply(ChangeSet(now=now, runners=(RowWrite(unread, new=False),)))
    again = Store(lens_engine, cluster_name="").load_state().runners["new-uid"]
    assert again.resource_requests == {"cpu": 500, "amd.com/gpu": 8}
    assert again.resource_limits == {"amd.com/gpu": 8}
