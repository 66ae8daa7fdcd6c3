"""Every value made to fit its column before it is written (SPEC §7).

PostgreSQL rejects a whole statement for one string longer than its VARCHAR, one
integer outside INTEGER/BIGINT, or one NUL character (the driver refuses NULs
before even sending them), and Kubernetes accepts all of those in status fields
and annotations. So each value is fitted to its column: NULs and lone surrogates
are dropped, over-long strings clipped, out-of-range integers nulled (0 where the
column is NOT NULL). Each change is reported, so that it is logged and counted.
A None for a column that is NOT NULL with a zero default (Lens's convention, see
`live`) is written as that zero, silently: it means the same.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import BigInteger, Column, Integer, SmallInteger, String, Table

Kind = Literal["string", "integer"]


@dataclass(frozen=True, slots=True)
class Fitting:
    """What was changed in one value: which column, and how."""

    column: str
    change: str


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: Kind
    length: int | None  # strings: maximum characters (None: TEXT)
    low: int
    high: int
    nullable: bool


def _bits(kind: Any) -> int | None:
    # BigInteger and SmallInteger are subclasses of Integer: most specific first
    if isinstance(kind, BigInteger):
        return 64
    if isinstance(kind, SmallInteger):
        return 16
    if isinstance(kind, Integer):
        return 32
    return None


def _rule(column: Column[Any]) -> _Rule | None:
    kind = column.type
    if isinstance(kind, String):
        return _Rule("string", kind.length, 0, 0, bool(column.nullable))
    bits = _bits(kind)
    if bits is None:
        return None
    return _Rule("integer", None, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1, bool(column.nullable))


def _clean(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from \\ud800-style JSON escapes
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


class TableFitter:
    """Fits row dicts to one table's columns."""

    def __init__(self, table: Table, *, zeros: Mapping[str, Any] | None = None) -> None:
        self.table = table.name
        self.rules = {c.name: r for c in table.columns if (r := _rule(c)) is not None}
        self.zeros = dict(zeros or {})

    def fit(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[Fitting]]:
        fitted = dict(values)
        changes: list[Fitting] = []
        for name, value in values.items():
            if value is None:
                if name in self.zeros:
                    fitted[name] = self.zeros[name]
                continue
            rule = self.rules.get(name)
            if rule is None:
                continue
            if rule.kind == "string" and isinstance(value, str):
                fitted[name] = self._string(name, value, rule, changes)
            elif (
                rule.kind == "integer"
                and isinstance(value, int)
                and not rule.low <= value <= rule.high
            ):
                fitted[name] = None if rule.nullable else 0
                changes.append(Fitting(name, f"{value} out of range, stored as {fitted[name]}"))
        return fitted, changes

    @staticmethod
    def _string(name: str, value: str, rule: _Rule, changes: list[Fitting]) -> str:
        cleaned = _clean(value)
        if cleaned != value:
            changes.append(Fitting(name, "NUL or invalid characters dropped"))
        if rule.length is not None and len(cleaned) > rule.length:
            changes.append(Fitting(name, f"{len(cleaned)} characters clipped to {rule.length}"))
            cleaned = cleaned[: rule.length]
        return cleaned
