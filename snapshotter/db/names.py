"""Runner-state tables keyed by name as well as by uid (a Primus Lens database).

Lens keeps one runner-state row per (namespace, name), as its own upsert replaces
the row of a name that a new runner took. ARC generates runner names, and a name is
free again once its runner is gone, so a new uid may take the name of a runner the
snapshotter stored. The diff records the older runner's end first (a name held by
a new uid means the old runner is gone) in the same transaction, with its run rows;
only then does the name go to the new uid: the row freed is one whose runner's end
is recorded, or one written by someone else (no resourceVersion). A live runner's
row is never deleted here.

A fact learned late about a runner whose row already went to a newer uid (a list
taken before its end, handed over after) has no row to land in: its runner-state
write is left out (`without_own_row`), and its run rows, written apart, keep the job.
"""

from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, or_, select, tuple_


def free_statement(table: Table) -> Any:
    t = table.c
    return table.delete().where(
        and_(
            t.namespace == bindparam("free_namespace"),
            t.name == bindparam("free_name"),
            t.uid != bindparam("free_uid"),
            or_(t.is_deleted.is_(True), t.resource_version.is_(None)),
        )
    )


def free(conn: Connection, statement: Any, rows: list[dict[str, Any]]) -> None:
    """Free the names that these new rows take."""
    conn.execute(
        statement,
        [
            {"free_namespace": r["namespace"], "free_name": r["name"], "free_uid": r["uid"]}
            for r in rows
        ],
    )


def without_own_row(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> set[str]:
    """The uids among `rows` that have no row while another uid's row holds their
    name: the name went to a newer runner after this one's end was recorded."""
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
