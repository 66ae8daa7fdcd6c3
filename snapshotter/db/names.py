"""Runner-state tables keyed by name as well as by uid (a Primus Lens database).

Lens keeps one runner-state row per (namespace, name): the newest runner's, as its
own upsert replaces the row of a name that a new runner took. ARC generates runner
names, and a name is free again once its runner is gone, so a new uid may take the
name of a runner the snapshotter stored. The diff records the older runner's end
first (a name held by a new uid means the old runner is gone) in the same
transaction, with its run rows; only then does the name go to the new uid: the row
freed is one whose runner's end is recorded and that was not created after the
new one, or one written by someone else (no resourceVersion). A live runner's row is
never deleted here.

A runner whose name a newer one holds has no row to land in: one learned late (a
list taken before a name was reused, handed over after), or one whose row already
went to the newer. Its runner-state write is left out, and its run rows, written
apart, keep its job.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Table, and_, bindparam, or_, select, tuple_

from snapshotter.db.live import is_zero_time

Row = dict[str, Any]
UNKNOWN = datetime.min.replace(tzinfo=UTC)


def free_statement(table: Table) -> Any:
    t = table.c
    created = bindparam("free_created", type_=DateTime(timezone=True))
    return table.delete().where(
        and_(
            t.namespace == bindparam("free_namespace"),
            t.name == bindparam("free_name"),
            t.uid != bindparam("free_uid"),
            or_(
                t.resource_version.is_(None),
                and_(
                    t.is_deleted.is_(True),
                    or_(
                        created.is_(None),
                        t.creation_timestamp.is_(None),
                        t.creation_timestamp <= created,
                    ),
                ),
            ),
        )
    )


def holding_their_names(
    conn: Connection, table: Table, free: Any, rows: list[Row], *, new: bool
) -> list[Row]:
    """The rows that get (or keep) their name: new rows take it from the runners
    `free` lets go, the newest of a batch first; a row whose name another uid's row
    still holds is left out."""
    if new:
        rows = _newest_per_name(rows)
        if rows:
            conn.execute(free, [_free_params(r) for r in rows])
    rowless = _without_own_row(conn, table, rows)
    return [r for r in rows if r["uid"] not in rowless]


def _free_params(row: Row) -> Row:
    created = _created(row)
    return {
        "free_namespace": row["namespace"],
        "free_name": row["name"],
        "free_uid": row["uid"],
        "free_created": None if created == UNKNOWN else created,
    }


def _newest_per_name(rows: list[Row]) -> list[Row]:
    """Of new runners sharing a name in one batch, the one created last (Kubernetes
    names are unique among live objects: the others are gone)."""
    newest: dict[tuple[str, str], Row] = {}
    for row in rows:
        key = (row["namespace"], row["name"])
        held = newest.get(key)
        if held is None or _created(held) <= _created(row):
            newest[key] = row
    return list(newest.values())


def _created(row: Row) -> datetime:
    """A row's creationTimestamp; UNKNOWN when not known (None, or a zero time)."""
    created: datetime | None = row["creation_timestamp"]
    if created is None or is_zero_time(created):
        return UNKNOWN
    return created


def _without_own_row(conn: Connection, table: Table, rows: list[Row]) -> set[str]:
    """The uids among `rows` that have no row while another uid's row holds their
    name."""
    if not rows:
        return set()
    t = table.c
    keys = {(r["namespace"], r["name"]) for r in rows}
    query = select(t.uid, t.namespace, t.name).where(
        or_(t.uid.in_({r["uid"] for r in rows}), tuple_(t.namespace, t.name).in_(keys))
    )
    found = conn.execute(query).all()
    have_row = {f.uid for f in found}
    holder = {(f.namespace, f.name): f.uid for f in found}
    return {
        r["uid"]
        for r in rows
        if r["uid"] not in have_row
        and holder.get((r["namespace"], r["name"]), r["uid"]) != r["uid"]
    }
