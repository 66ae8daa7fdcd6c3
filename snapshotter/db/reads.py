"""Rows read back into what the diff compares against: pools, runners, configs.

Only rows with a resourceVersion are the snapshotter's: rows without one were
written by someone else (Lens's exporter, on an adopted database) and are neither
compared nor finished here. Lens's zeros read as unknown (`live.LiveTable.read`).
"""

from typing import Any

from sqlalchemy import Connection, Table, and_, or_, select

from snapshotter.db import tables
from snapshotter.db.live import LiveTable
from snapshotter.diff.matching import WorkflowConfig
from snapshotter.diff.rows import RunnerCounts, RunnerSetRow, RunnerStateRow, column_names

RUNNER_SETS_TABLE: Table = tables.RunnerSet.__table__  # type: ignore[assignment]
RUNNERS_TABLE: Table = tables.RunnerState.__table__  # type: ignore[assignment]
CONFIGS: Table = tables.WorkflowConfig.__table__  # type: ignore[assignment]
HISTORY: Table = tables.RunnerSetHistory.__table__  # type: ignore[assignment]
RUNNER_SET_COLUMNS = column_names(RunnerSetRow)
RUNNER_COLUMNS = tuple(c for c in column_names(RunnerStateRow) if c != "runner_set_uid")


def scope(table: Table, cluster_name: str, namespaces: tuple[str, ...]) -> Any:
    """This daemon's rows: its cluster, and its namespaces if it has a list of them."""
    clauses = [table.c.cluster_name == cluster_name]
    if namespaces:
        clauses.append(table.c.namespace.in_(namespaces))
    return and_(*clauses)


def runner_sets(
    conn: Connection, live: LiveTable, *where: Any
) -> tuple[list[RunnerSetRow], dict[str, int]]:
    """The pools, and their row ids by uid."""
    query = select(RUNNER_SETS_TABLE).where(
        RUNNER_SETS_TABLE.c.resource_version.is_not(None), *where
    )
    rows, ids = [], {}
    for db_row in conn.execute(query).mappings():
        ids[db_row["uid"]] = db_row["id"]
        rows.append(RunnerSetRow(**live.read({c: db_row[c] for c in RUNNER_SET_COLUMNS})))
    return rows, ids


def runners(conn: Connection, live: LiveTable, *where: Any) -> list[RunnerStateRow]:
    set_uid = RUNNER_SETS_TABLE.c.uid.label("runner_set_uid")
    query = (
        select(RUNNERS_TABLE, set_uid)
        .outerjoin(RUNNER_SETS_TABLE, RUNNER_SETS_TABLE.c.id == RUNNERS_TABLE.c.runner_set_id)
        .where(RUNNERS_TABLE.c.resource_version.is_not(None), *where)
    )
    return [
        RunnerStateRow(
            runner_set_uid=m["runner_set_uid"],
            **live.read({c: m[c] for c in RUNNER_COLUMNS}),
        )
        for m in conn.execute(query).mappings()
    ]


def last_histories(conn: Connection, ids: dict[str, int]) -> dict[str, RunnerCounts]:
    """Each pool's counts in its last history row (pools are few: one query each,
    on the history table's (runner_set_id, observed_at) index)."""
    h = HISTORY.c
    found = {}
    for uid, id_ in ids.items():
        query = (
            select(h.current_runners, h.pending_runners, h.running_runners)
            .add_columns(h.failed_runners, h.busy_runners, h.desired_runners)
            .where(h.runner_set_id == id_)
            .order_by(h.observed_at.desc(), h.id.desc())
            .limit(1)
        )
        row = conn.execute(query).first()
        if row is not None:
            found[uid] = RunnerCounts(*row)
    return found


def configs(conn: Connection, cluster_name: str) -> list[WorkflowConfig]:
    """Enabled configs for this cluster (or for any cluster: cluster_name '')."""
    query = (
        select(CONFIGS)
        .where(
            CONFIGS.c.enabled.is_(True),
            or_(CONFIGS.c.cluster_name == "", CONFIGS.c.cluster_name == cluster_name),
        )
        .order_by(CONFIGS.c.id)
    )
    return [
        WorkflowConfig(
            id=m["id"],
            name=m["name"],
            runner_set_namespace=m["runner_set_namespace"],
            runner_set_name=m["runner_set_name"],
            cluster_name=m["cluster_name"],
            workflow_filter=m["workflow_filter"],
            branch_filter=m["branch_filter"],
            enabled=m["enabled"],
        )
        for m in conn.execute(query).mappings()
    ]
