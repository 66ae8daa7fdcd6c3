"""Field-level difference between a persisted row and a freshly mapped one.

The only user of deepdiff. Bookkeeping columns (resourceVersion, seen/sync times)
change on every observation and are excluded, so that an object whose tracked
fields did not change writes nothing.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from deepdiff import DeepDiff

from snapshotter.diff.rows import column_names


def row_values(row: object, names: Iterable[str]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in names}


def changed_fields(old: object, new: object, *, ignore: frozenset[str]) -> dict[str, Any]:
    """Columns of `new` whose value differs from `old`, ignoring bookkeeping columns.

    An event usually changes one or two of a row's ~30 columns, and deepdiff's cost
    grows with the columns it walks, so columns that are plainly equal (same value,
    same type) are set aside first and deepdiff compares the rest."""
    names = [n for n in column_names(type(new)) if n not in ignore]
    candidates = [n for n in names if _differ(getattr(old, n), getattr(new, n))]
    if not candidates:
        return {}
    before, after = row_values(old, candidates), row_values(new, candidates)
    diff = DeepDiff(before, after, view="tree")
    changed = {_top_level_key(level.path(output_format="list")) for level in _levels(diff)}
    return {name: after[name] for name in candidates if name in changed}


def _differ(a: Any, b: Any) -> bool:
    return type(a) is not type(b) or a != b


def _levels(diff: Mapping[str, Iterable[Any]]) -> Iterable[Any]:
    for levels in diff.values():
        yield from levels


def _top_level_key(path: list[Any]) -> str:
    return str(path[0])
