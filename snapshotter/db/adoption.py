"""Schema changes that adopt a Primus Lens database instead of refusing it.

Lens creates four of the snapshotter's tables itself (`github_runner_sets`,
`github_ephemeral_runner_states`, `github_workflow_configs`, `github_workflow_runs`).
The migrations create a table that is missing and adopt one that exists: they add
the columns and indexes the snapshotter needs (nullable or with defaults) and never
drop, retype or rewrite a column, index or row they did not create. What they add
to an adopted table is recorded in `snapshotter_schema_additions`, so that a
downgrade removes exactly that and nothing of Lens's.

Before anything changes, `check_adoptable` looks for what would make adoption fail
half-way (a column of the same name and another type, a NOT NULL column the
snapshotter cannot fill, rows that break a unique key it needs) and raises
AdoptionConflict naming it; PostgreSQL runs the whole upgrade in one transaction,
so nothing is left behind either way.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from snapshotter.db.live import unique_keys
from snapshotter.errors import StoreError

ADDITIONS = "snapshotter_schema_additions"
ADOPTED, COLUMN, INDEX = "adopted", "column", "index"


class AdoptionConflict(StoreError):
    """An existing table cannot be adopted without changing what is in it."""


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """An index of the snapshotter's (`where`: a partial index's predicate). A unique
    one in `adopted_keys` is a key its writes rely on, created as an index where the
    table already exists, unless an equivalent unique key is there."""

    table: str
    name: str
    columns: tuple[str, ...]
    unique: bool = False
    where: str | None = None

    def create(self) -> None:
        where = sa.text(self.where) if self.where else None
        op.create_index(
            self.name,
            self.table,
            list(self.columns),
            unique=self.unique,
            postgresql_where=where,
            sqlite_where=where,
        )


def _inspector() -> sa.Inspector:
    return sa.inspect(op.get_bind())


def table_exists(name: str) -> bool:
    return _inspector().has_table(name)


def is_adopted(table: str) -> bool:
    if not table_exists(ADDITIONS):
        return False
    query = sa.text(f"SELECT 1 FROM {ADDITIONS} WHERE table_name = :t AND kind = :k")
    return op.get_bind().execute(query, {"t": table, "k": ADOPTED}).first() is not None


def _record(table: str, kind: str, name: str) -> None:
    if not table_exists(ADDITIONS):
        op.create_table(
            ADDITIONS,
            sa.Column("table_name", sa.String(255), nullable=False),
            sa.Column("kind", sa.String(20), nullable=False),
            sa.Column("name", sa.String(255), nullable=False),
            sa.PrimaryKeyConstraint("table_name", "kind", "name", name=f"pk_{ADDITIONS}"),
        )
    op.get_bind().execute(
        sa.text(f"INSERT INTO {ADDITIONS} (table_name, kind, name) VALUES (:t, :k, :n)"),
        {"t": table, "k": kind, "n": name},
    )


def _recorded(table: str, kind: str) -> list[str]:
    if not table_exists(ADDITIONS):
        return []
    query = sa.text(f"SELECT name FROM {ADDITIONS} WHERE table_name = :t AND kind = :k")
    return [r.name for r in op.get_bind().execute(query, {"t": table, "k": kind})]


def _forget(table: str) -> None:
    if table_exists(ADDITIONS):
        query = sa.text(f"DELETE FROM {ADDITIONS} WHERE table_name = :t")
        op.get_bind().execute(query, {"t": table})


# -- upgrading ---------------------------------------------------------------------


def create_or_adopt(
    name: str,
    columns: Sequence[sa.Column[Any]],
    *,
    constraints: Sequence[sa.Constraint] = (),
    indexes: Sequence[IndexSpec] = (),
    adopted_keys: Sequence[IndexSpec] = (),
) -> None:
    """Create the table; or, if it exists, add what it lacks of it. `adopted_keys`
    replace the table's own unique constraints on an existing table (as partial
    unique indexes, unless an equivalent unique key is already there)."""
    if not table_exists(name):
        op.create_table(name, *columns, *constraints)
        for index in indexes:
            index.create()
        return
    _record(name, ADOPTED, name)
    add_columns(name, [c for c in columns if not c.primary_key])
    existing = {i["name"] for i in _inspector().get_indexes(name)}
    for key in adopted_keys:
        if not _has_unique(name, key.columns):
            key.create()
            _record(name, INDEX, key.name)
    for index in indexes:
        if index.name not in existing:
            index.create()
            _record(name, INDEX, index.name)


def add_columns(table: str, columns: Iterable[sa.Column[Any]]) -> None:
    """Add the columns the table lacks; recorded when the table is adopted."""
    present = {c["name"] for c in _inspector().get_columns(table)}
    adopted = is_adopted(table)
    for column in columns:
        if column.name in present:
            continue
        op.add_column(table, column)
        if adopted:
            _record(table, COLUMN, column.name)


def add_index(index: IndexSpec) -> None:
    """Create an index the table lacks (by name); recorded when the table is adopted,
    so that a downgrade drops it and never one of Lens's."""
    if index.name in {i["name"] for i in _inspector().get_indexes(index.table)}:
        return
    index.create()
    if is_adopted(index.table):
        _record(index.table, INDEX, index.name)


def _has_unique(table: str, columns: Sequence[str]) -> bool:
    return tuple(columns) in unique_keys(op.get_bind(), table)


# -- downgrading -------------------------------------------------------------------


def drop_or_release(table: str) -> None:
    """Drop a table the snapshotter created; from an adopted one, drop only the
    columns and indexes it added."""
    if not table_exists(table):
        return
    if not is_adopted(table):
        op.drop_table(table)
        return
    for index in _recorded(table, INDEX):
        op.drop_index(index, table_name=table)
    for column in _recorded(table, COLUMN):
        op.drop_column(table, column)
    _forget(table)


def drop_added_columns(table: str, names: Iterable[str]) -> None:
    """Drop the named columns where the snapshotter added them (all of them on its
    own tables, only recorded ones on adopted tables)."""
    if not table_exists(table):
        return
    names = list(names)
    if is_adopted(table):
        recorded = set(_recorded(table, COLUMN))
        names = [n for n in names if n in recorded]
        for name in names:
            op.get_bind().execute(
                sa.text(
                    f"DELETE FROM {ADDITIONS} WHERE table_name = :t AND kind = :k AND name = :n"
                ),
                {"t": table, "k": COLUMN, "n": name},
            )
    present = {c["name"] for c in _inspector().get_columns(table)}
    with op.batch_alter_table(table) as batch:
        for name in names:
            if name in present:
                batch.drop_column(name)


def drop_added_index(table: str, name: str) -> None:
    """Drop an index the snapshotter created (on an adopted table: only if recorded)."""
    if not table_exists(table):
        return
    if is_adopted(table):
        if name not in _recorded(table, INDEX):
            return
        op.get_bind().execute(
            sa.text(f"DELETE FROM {ADDITIONS} WHERE table_name = :t AND kind = :k AND name = :n"),
            {"t": table, "k": INDEX, "n": name},
        )
    if name in {i["name"] for i in _inspector().get_indexes(table)}:
        op.drop_index(name, table_name=table)


def drop_additions_table() -> None:
    if table_exists(ADDITIONS):
        op.drop_table(ADDITIONS)


# -- checking ----------------------------------------------------------------------

_FAMILIES: tuple[tuple[str, tuple[type, ...]], ...] = (
    ("boolean", (bool,)),  # before integer: bool is an int
    ("integer", (int,)),
    ("string", (str,)),
    ("time", (datetime, date)),
    ("json", (dict, list)),
)


def _family(kind: Any) -> str | None:
    if isinstance(kind, sa.TypeDecorator):
        kind = kind.impl_instance
    try:
        python = kind.python_type
    except NotImplementedError:
        return None
    for family, types in _FAMILIES:
        if issubclass(python, types):
            return family
    return None


def check_adoptable(tables: Iterable[sa.Table], keys: Iterable[IndexSpec]) -> None:
    """Raise AdoptionConflict for the first thing that makes an existing table
    impossible to adopt as `tables` describe it (the snapshotter's final shape)."""
    inspector = _inspector()
    for table in tables:
        if not inspector.has_table(table.name):
            continue
        for problem in _column_conflicts(table, inspector.get_columns(table.name)):
            raise AdoptionConflict(f"cannot adopt table {table.name}: {problem}")
    for key in keys:
        if inspector.has_table(key.table) and not _has_unique(key.table, key.columns):
            _check_unique(key)


def _column_conflicts(table: sa.Table, existing: Sequence[Any]) -> Iterable[str]:
    ours = {c.name: c for c in table.columns}
    for column in existing:
        mine = ours.get(column["name"])
        if mine is None:
            if not column["nullable"] and column.get("default") is None:
                yield (
                    f"column {column['name']} is NOT NULL without a default and the "
                    "snapshotter does not write it"
                )
            continue
        theirs, wanted = _family(column["type"]), _family(mine.type)
        if theirs is not None and wanted is not None and theirs != wanted:
            yield f"column {column['name']} is {column['type']}, the snapshotter needs {wanted}"


def _check_unique(key: IndexSpec) -> None:
    cols = ", ".join(key.columns)
    where = f"WHERE {key.where} " if key.where else ""
    query = sa.text(
        f"SELECT {cols}, count(*) AS n FROM {key.table} {where}"
        f"GROUP BY {cols} HAVING count(*) > 1 ORDER BY count(*) DESC LIMIT 1"
    )
    row = op.get_bind().execute(query).first()
    if row is not None:
        values = ", ".join(f"{c}={row[i]!r}" for i, c in enumerate(key.columns))
        raise AdoptionConflict(
            f"cannot adopt table {key.table}: {row.n} rows share {values}, and the "
            f"snapshotter needs ({cols}) unique {where.strip()}".rstrip()
        )
