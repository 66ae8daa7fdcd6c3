"""The written tables as the database has them, which is not always as `tables`
declares them: on an adopted Primus Lens database (`adoption`) some columns are
NOT NULL with a zero default (`''`, `0`), some are shorter or longer, the runner
states are also keyed by (namespace, name), and their uid key is a partial index.

Read once per store, before its first write. Lens's conventions are mapped both
ways here: a None written into a NOT NULL column becomes the column's zero, and a
zero read back from such a column (or Go's zero time, `0001-01-01`) is None.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, Connection, Integer, MetaData, String, Table, inspect

# Go's zero time.Time is written as 0001-01-01; no real timestamp is that early.
ZERO_TIME_BEFORE = datetime(1900, 1, 1, tzinfo=UTC)


def _zero(kind: Any) -> Any:
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, Integer):
        return 0
    if isinstance(kind, String):
        return ""
    return None


@dataclass(frozen=True, slots=True)
class LiveTable:
    """One table as reflected, beside its declared shape."""

    table: Table  # reflected
    zeros: dict[str, Any] = field(default_factory=dict)  # declared nullable, NOT NULL here
    uid_key_partial: bool = False  # the uid key is a partial index (uid <> '')
    name_key: bool = False  # (namespace, name) is unique too (Lens's runner states)
    keys: frozenset[tuple[str, ...]] = frozenset()  # every unique column set

    @classmethod
    def reflect(cls, conn: Connection, declared: Table) -> "LiveTable":
        reflected = Table(declared.name, MetaData(), autoload_with=conn)
        zeros = {}
        for column in reflected.columns:
            mine = declared.columns.get(column.name)
            if mine is None or not mine.nullable or column.nullable:
                continue
            if column.server_default is not None and (zero := _zero(column.type)) is not None:
                zeros[column.name] = zero
        uniques = unique_keys(conn, declared.name)
        return cls(
            table=reflected,
            zeros=zeros,
            uid_key_partial=bool(uniques.get(("uid",))),
            name_key=("namespace", "name") in uniques,
            keys=frozenset(uniques),
        )

    def read(self, values: dict[str, Any]) -> dict[str, Any]:
        """A row as read, with Lens's zeros and zero times as None."""
        for name, value in values.items():
            if value is not None and self._means_unknown(name, value):
                values[name] = None
        return values

    def _means_unknown(self, name: str, value: Any) -> bool:
        if name in self.zeros:
            return bool(value == self.zeros[name])
        return isinstance(value, datetime) and is_zero_time(value)


def is_zero_time(value: datetime) -> bool:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware < ZERO_TIME_BEFORE


def unique_keys(conn: Connection, table: str) -> dict[tuple[str, ...], str]:
    """Unique column sets -> the partial index's predicate ('' when it covers all)."""
    inspector = inspect(conn)
    keys: dict[tuple[str, ...], str] = {}
    for index in inspector.get_indexes(table):
        if index["unique"]:
            where = index.get("dialect_options", {}).get(f"{conn.dialect.name}_where")
            keys[tuple(c for c in index["column_names"] if c)] = str(where or "")
    for constraint in inspector.get_unique_constraints(table):
        keys[tuple(constraint["column_names"])] = ""
    return keys
