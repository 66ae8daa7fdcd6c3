"""Runner-state tables keyed by name as well as by uid (a Primus Lens database).

Lens keeps one runner-state row per (namespace, name): the newest runner's, as its
own upsert replaces the row of a name that a new runner took. ARC generates runner
names, and a name is free again once its runner is gone, so a new uid may take the
name of a runner the snapshotter stored. The diff records the older runner's end
first (a name held by a new uid means the old runner is gone) in the same
transaction, with its run rows; only then does the name go to the new uid: the row
freed is one whose runner's end is recorded, or one written by someone else (no
resourceVersion), and either way of a runner not created after the new one. A live
runner's row is never deleted here.

A runner whose name a newer one holds has no row to land in: one learned late (a
list taken before a name was reused, handed over after), or one whose row already
went to the newer. Its runner-state write is left out, and its run rows, written
apart, keep its job. A new runner whose name an older one still holds (that
runner's end refused, or not known yet) is refused by the name's key and retried.
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
            or_(t.resource_version.is_(None), t.is_deleted.is_(True)),
            or_(created.is_(None), t.creation_timestamp.is_(None), t.creation_timestamp <= created),
        )
    )


def holding_their_names(
    conn: Connection, table: Table, free: Any, rows: list[Row], *, new: bool
) -> list[Row]:
    """The rows to write: new rows take their name from the runners `free` lets go,
    the newest of a batch first; a row whose name a runner created after it (or in
    the same second) holds is left out, as is a known runner's whose row is gone. A
    new row whose name an older runner still holds is written, and refused by the
    name's key: that runner's end is not recorded yet, and the refused object is
    retried once it is."""
    if new:
        rows = _newest_per_name(rows)
        if rows:
            conn.execute(free, [_free_params(r) for r in rows])
    held = _held_by_another(conn, table, rows, only_newer=new)
    return [r for r in rows if r["uid"] not in held]


def _free_params(row: Row) -> Row:
    created = _created(row["creation_timestamp"])
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
        if held is None or _created(held["creation_timestamp"]) <= _created(
            row["creation_timestamp"]
        ):
            newest[key] = row
    return list(newest.values())


def _created(created: datetime | None) -> datetime:
    """A creationTimestamp, always aware (`UtcDateTime` reads a column without time
    zone as UTC); UNKNOWN when not known (None, or a zero time)."""
    if created is None or is_zero_time(created):
        return UNKNOWN
    return created


def _held_by_another(
    conn: Connection, table: Table, rows: list[Row], *, only_newer: bool
) -> set[str]:
    """The uids among `rows` that have no row while another uid's row holds their
    name; `only_newer`: a row of a runner not created before theirs (or of unknown
    creation). A known runner without a row lost it to another (a newer runner, or
    retention): it is never written over that name."""
    if not rows:
        return set()
    t = table.c
    # a runner's name never changes, so its own row, if it has one, is among these
    keys = {(r["namespace"], r["name"]) for r in rows}
    query = select(t.uid, t.namespace, t.name, t.creation_timestamp).where(
        tuple_(t.namespace, t.name).in_(keys)
    )
    found = conn.execute(query).all()
    have_row = {f.uid for f in found}
    holders = {(f.namespace, f.name): f for f in found}
    held = set()
    for row in rows:
        holder = holders.get((row["namespace"], row["name"]))
        if row["uid"] in have_row or holder is None or holder.uid == row["uid"]:
            continue
        mine, theirs = _created(row["creation_timestamp"]), _created(holder.creation_timestamp)
        if not only_newer or UNKNOWN in (mine, theirs) or theirs >= mine:
            held.add(row["uid"])
    return held
