"""Retention on real databases (PostgreSQL, and the embedded SQLite): old and recent
rows of every kind, and exactly the right ones go. A live runner, or a finished job
whose run row is not written yet, stays whatever its age; run rows always stay."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert, inspect

from snapshotter.db import migrate, retention
from snapshotter.db.store import Store
from snapshotter.db.tables import Base
from snapshotter.errors import StoreFenced
from snapshotter.sync.retention import Policy, run_pass
from tests.support import lens_schema
from tests.support.db_rows import rows

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CLUSTER = "prod"
HISTORY, REJECTS, RUNNERS = retention.TABLES
POLICY = Policy(
    ages={HISTORY: timedelta(days=90), REJECTS: timedelta(days=30), RUNNERS: timedelta(days=30)},
    batch_size=2,  # several batches per table
    pause_seconds=0,
)


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


def clock() -> datetime:
    return NOW


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request: pytest.FixtureRequest) -> Engine:
    name = "pg_engine" if request.param == "postgresql" else "sqlite_engine"
    found: Engine = request.getfixturevalue(name)
    return found


@pytest.fixture
def lens_engine(empty_pg_engine: Engine) -> Engine:
    return empty_pg_engine


def add(engine: Engine, table: str, *values: dict[str, Any]) -> None:
    with engine.begin() as conn:
        for row in values:  # one by one: a multi-row insert takes the first row's columns
            conn.execute(insert(Base.metadata.tables[table]), [row])


def history(uid: str, at: datetime, cluster: str = CLUSTER) -> dict[str, Any]:
    return {"cluster_name": cluster, "runner_set_uid": uid, "runner_set_id": 1, "observed_at": at}


def reject(uid: str, at: datetime, cluster: str = CLUSTER) -> dict[str, Any]:
    return {
        "cluster_name": cluster,
        "resource": "ephemeralrunners",
        "uid": uid,
        "namespace": "arc",
        "name": uid,
        "resource_version": "7",
        "error": "value too long",
        "rejected_at": at,
    }


def runner(uid: str, updated: datetime, **facts: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "cluster_name": CLUSTER,
        "uid": uid,
        "namespace": "arc",
        "name": uid,
        "resource_version": "5",
        "is_deleted": True,
        "first_seen_at": updated,
        "last_seen_at": updated,
        "created_at": updated,
        "updated_at": updated,
    }
    return row | facts


def job(at: datetime) -> dict[str, Any]:
    return {"job_id": "j-guid", "job_assigned_at": at, "is_completed": True, "completed_at": at}


def run(uid: str, at: datetime) -> dict[str, Any]:
    return {
        "config_id": 1,
        "workload_uid": uid,
        "cluster_name": CLUSTER,
        "created_at": at,
        "updated_at": at,
    }


def populate(engine: Engine) -> None:
    """Old and recent rows of every kind; the uids say what must become of them."""
    add(
        engine,
        HISTORY,
        *(history(f"old-{n}", days_ago(91 + n)) for n in range(5)),
        history("keep-recent", days_ago(89)),
        history("keep-other-cluster", days_ago(400), cluster="other"),
    )
    add(
        engine,
        REJECTS,
        reject("old-1", days_ago(31)),
        reject("old-2", days_ago(300)),
        reject("keep-recent", days_ago(29)),
        reject("keep-other-cluster", days_ago(300), cluster="other"),
    )
    add(
        engine,
        RUNNERS,
        runner("old-idle", days_ago(31)),  # deleted without ever having a job
        runner("old-recorded", days_ago(60), **job(days_ago(60))),  # its run row is written
        runner("old-linked", days_ago(60), **job(days_ago(60)), workflow_run_id=42),  # by Lens
        runner("old-idle-2", days_ago(500)),
        runner("keep-live", days_ago(400), is_deleted=False),
        runner("keep-live-job", days_ago(400), is_deleted=False, **job(days_ago(400))),
        runner("keep-unrecorded", days_ago(400), **job(days_ago(400))),  # no run row yet
        runner("keep-unrecorded-v12", days_ago(400), job_request_id=9),  # ARC < 0.13 job
        runner("keep-unrecorded-job-id", days_ago(400), job_id="guid"),  # no time recorded
        runner("keep-unrecorded-run-id", days_ago(400), github_run_id=77),  # from annotations
        runner("keep-unrecorded-gh-job", days_ago(400), github_job_id=78),
        runner("keep-unrecorded-wf-run", days_ago(400), job_workflow_run_id=79),
        runner("keep-unrecorded-assigned", days_ago(400), job_assigned_at=days_ago(400)),
        runner("keep-recent", days_ago(29)),
        runner("keep-other-cluster", days_ago(400), cluster_name="other"),
        runner("keep-not-ours", days_ago(400), resource_version=None),  # Lens's exporter's
    )
    add(engine, "github_workflow_runs", run("old-recorded", days_ago(400)), run("x", days_ago(999)))


def uids(engine: Engine, table: str) -> set[str]:
    column = "runner_set_uid" if table == HISTORY else "uid"
    return {row[column] for row in rows(engine, table)}


def kept_only(engine: Engine, table: str) -> None:
    assert all(uid.startswith("keep-") for uid in uids(engine, table)), uids(engine, table)


def purger(engine: Engine, **kwargs: Any) -> retention.Purger:
    return retention.Purger(engine, cluster_name=CLUSTER, **kwargs)


def test_exactly_the_rows_past_their_limit_go(engine: Engine) -> None:
    populate(engine)

    deleted = run_pass(purger(engine), POLICY, clock=clock)

    assert deleted == Counter({HISTORY: 5, REJECTS: 2, RUNNERS: 4})
    assert uids(engine, HISTORY) == {"keep-recent", "keep-other-cluster"}
    assert uids(engine, REJECTS) == {"keep-recent", "keep-other-cluster"}
    kept_only(engine, RUNNERS)
    assert len(uids(engine, RUNNERS)) == 12
    assert len(rows(engine, "github_workflow_runs")) == 2  # run rows are Lens's: never deleted


def test_a_table_without_a_limit_keeps_every_row(engine: Engine) -> None:
    populate(engine)
    before = len(rows(engine, RUNNERS))
    policy = Policy(ages={HISTORY: timedelta(days=90)}, batch_size=100, pause_seconds=0)

    deleted = run_pass(purger(engine), policy, clock=clock)

    assert deleted == Counter({HISTORY: 5})
    assert len(rows(engine, RUNNERS)) == before
    assert len(rows(engine, REJECTS)) == 4


def test_a_discarded_reject_is_logged(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    populate(engine)

    run_pass(purger(engine), POLICY, clock=clock)

    discarded = [r.getMessage() for r in caplog.records if "discarded a rejected" in r.message]
    assert len(discarded) == 2
    assert any("uid=old-2" in line for line in discarded)


def test_nothing_is_deleted_once_leadership_is_gone(pg_engine: Engine) -> None:
    populate(pg_engine)
    store = Store(pg_engine, cluster_name=CLUSTER)
    epoch = store.take_leadership("a", now=NOW)
    store.take_leadership("b", now=NOW)  # a successor took over: epoch + 1

    with pytest.raises(StoreFenced):
        run_pass(purger(pg_engine, fence=lambda: epoch), POLICY, clock=clock)
    deleted = run_pass(purger(pg_engine), POLICY, clock=clock, may_delete=lambda: False)

    assert deleted == Counter()
    assert len(uids(pg_engine, HISTORY)) == 7


def test_a_pass_stops_between_batches_when_leadership_is_lost(pg_engine: Engine) -> None:
    populate(pg_engine)
    answers = iter([True, False])

    deleted = run_pass(
        purger(pg_engine), POLICY, clock=clock, may_delete=lambda: next(answers, False)
    )

    assert deleted == Counter({HISTORY: 2})  # one batch, then no more


def test_a_lens_table_keeps_its_own_index_and_gets_no_copy(lens_engine: Engine) -> None:
    lens_schema.create(lens_engine)
    migrate.upgrade(lens_engine)
    names = {i["name"] for i in inspect(lens_engine).get_indexes(RUNNERS)}
    assert "idx_runner_states_deleted" in names
    assert "idx_github_ephemeral_runner_states_retention" not in names
    history_names = {i["name"] for i in inspect(lens_engine).get_indexes(HISTORY)}
    assert "idx_github_runner_set_history_retention" in history_names

    migrate.downgrade(lens_engine, "0005")

    assert "idx_runner_states_deleted" in {
        i["name"] for i in inspect(lens_engine).get_indexes(RUNNERS)
    }
    history_names = {i["name"] for i in inspect(lens_engine).get_indexes(HISTORY)}
    assert "idx_github_runner_set_history_retention" not in history_names
