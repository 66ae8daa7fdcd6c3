"""The store's start-up checks (SPEC §4.8, §5): one cluster per cluster_name, and
Lens's task tables present before the option that writes them is honoured. On
PostgreSQL."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from snapshotter.db import lens_tasks, migrate
from snapshotter.db.store import Store
from snapshotter.diff.changes import RejectedObject
from snapshotter.errors import StoreError, StoreFenced
from tests.support import lens_schema
from tests.support.db_rows import rows

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_the_first_cluster_to_claim_a_name_keeps_it(pg_engine: Engine) -> None:
    store = Store(pg_engine, cluster_name="prod")
    assert store.claim_cluster(None, now=T0) is None  # no identity known: nothing to compare
    assert store.claim_cluster("kube-system-uid-a", now=T0) is None
    assert store.claim_cluster("kube-system-uid-a", now=T0) is None  # the same cluster again
    assert store.claim_cluster("kube-system-uid-b", now=T0) == "kube-system-uid-a"
    assert store.claim_cluster(None, now=T0) is None
    other = Store(pg_engine, cluster_name="staging")  # another name is another claim
    assert other.claim_cluster("kube-system-uid-b", now=T0) is None
    identities = {r["cluster_name"]: r["identity"] for r in rows(pg_engine, "snapshotter_clusters")}
    assert identities == {"prod": "kube-system-uid-a", "staging": "kube-system-uid-b"}
    store.close()
    other.close()


def test_collection_tasks_need_lenss_task_tables(pg_engine: Engine) -> None:
    Store(pg_engine, cluster_name="").check_lens_tables()  # the option off: nothing to check
    store = Store(pg_engine, cluster_name="", collection_tasks=True)
    with pytest.raises(StoreError) as refused:
        store.check_lens_tables()
    message = str(refused.value)
    assert all(table in message for table in lens_tasks.REQUIRED), message
    assert "lens.collection_tasks is on" in message
    store.close()


def test_collection_tasks_on_a_lens_database_pass_the_check(empty_pg_engine: Engine) -> None:
    lens_schema.create(empty_pg_engine)
    migrate.upgrade(empty_pg_engine)
    store = Store(empty_pg_engine, cluster_name="", collection_tasks=True)
    with pytest.raises(StoreError, match="no workload_task_state, github_workflow_run_summaries"):
        store.check_lens_tables()  # Lens's own migrations have not made them yet
    lens_schema.create_task_tables(empty_pg_engine)
    store.check_lens_tables()
    store.close()


def test_a_new_leader_is_recorded_and_fences_the_previous_one(pg_engine: Engine) -> None:
    first = Store(pg_engine, cluster_name="prod")
    second = Store(pg_engine, cluster_name="prod")
    assert first.take_leadership("replica-a", now=T0) == 1
    assert second.take_leadership("replica-b", now=T0) == 2
    clusters = {r["cluster_name"]: r for r in rows(pg_engine, "snapshotter_clusters")}
    assert (clusters["prod"]["leader"], clusters["prod"]["leader_epoch"]) == ("replica-b", 2)
    assert first.superseded_at() is not None
    assert second.superseded_at() is None

    refused = RejectedObject("ephemeralrunners", "u1", "ns", "r1", "7", "refused")
    with pytest.raises(StoreFenced):
        first.reject(refused, payload=(), now=T0)  # the deposed leader writes nothing
    second.reject(refused, payload=(), now=T0)
    assert [r["uid"] for r in rows(pg_engine, "snapshotter_rejects")] == ["u1"]
    first.close()
    second.close()
