"""Who writes a cluster_name: the cluster's identity, and the leader epoch (SPEC §6).

Two clusters must not write one cluster_name (each would declare the other's
runners gone): the first one to write records its identity (the kube-system
namespace's uid) and a different one is refused. Among the replicas of one
cluster, a new leader bumps the epoch, and every transaction first checks, holding
the epoch row FOR SHARE, that its own epoch is still the current one: a deposed
leader (paused, partitioned) can never commit after its successor took over.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, select

from snapshotter.db import tables
from snapshotter.errors import StoreFenced

CLUSTERS: Table = tables.Cluster.__table__  # type: ignore[assignment]


def _ensure_row(conn: Connection, insert: Any, cluster_name: str, now: datetime) -> None:
    conn.execute(
        insert(CLUSTERS).on_conflict_do_nothing(),
        [{"cluster_name": cluster_name, "created_at": now, "updated_at": now}],
    )


def claim(
    conn: Connection, insert: Any, cluster_name: str, identity: str | None, now: datetime
) -> str | None:
    """Record which cluster writes `cluster_name`; the identity already recorded when
    it is a different one (the caller refuses to start)."""
    _ensure_row(conn, insert, cluster_name, now)
    row = conn.execute(
        select(CLUSTERS.c.identity).where(CLUSTERS.c.cluster_name == cluster_name)
    ).one()
    if row.identity is None and identity is not None:
        conn.execute(
            CLUSTERS.update()
            .where(CLUSTERS.c.cluster_name == cluster_name)
            .values(identity=identity, updated_at=now)
        )
        return None
    known: str | None = row.identity
    return known if identity is not None and known not in (None, identity) else None


def bump_epoch(conn: Connection, insert: Any, cluster_name: str, holder: str, now: datetime) -> int:
    """A new leader's epoch. The update waits for transactions of the previous
    leader under way (they hold the row FOR SHARE), and fails every later one."""
    _ensure_row(conn, insert, cluster_name, now)
    epoch: int = conn.execute(
        CLUSTERS.update()
        .where(CLUSTERS.c.cluster_name == cluster_name)
        .values(
            leader_epoch=CLUSTERS.c.leader_epoch + 1,
            leader=holder,
            leader_since=now,
            updated_at=now,
        )
        .returning(CLUSTERS.c.leader_epoch)
    ).scalar_one()
    return epoch


def check(conn: Connection, cluster_name: str, fence: int | None) -> None:
    """Raise StoreFenced unless `fence` is still the current epoch (None: no leader
    election, nothing to check)."""
    if fence is None:
        return
    query = (
        select(CLUSTERS.c.leader_epoch, CLUSTERS.c.leader)
        .where(CLUSTERS.c.cluster_name == cluster_name)
        .with_for_update(read=True)
    )
    row = conn.execute(query).one_or_none()
    if row is None or row.leader_epoch != fence:
        epoch = row.leader_epoch if row is not None else "?"
        holder = row.leader if row is not None else None
        raise StoreFenced(
            f"another replica leads since epoch {epoch} ({holder}); this one held epoch {fence}"
        )


def successor_since(conn: Connection, cluster_name: str, fence: int) -> datetime | None:
    """When the leader after epoch `fence` took over (None: nobody did), read without
    a lock."""
    row = conn.execute(
        select(CLUSTERS.c.leader_epoch, CLUSTERS.c.leader_since).where(
            CLUSTERS.c.cluster_name == cluster_name
        )
    ).one_or_none()
    if row is None or row.leader_epoch <= fence:
        return None
    since: datetime | None = row.leader_since
    return since
