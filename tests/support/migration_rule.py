"""The expand/contract rule for migrations, checked on their source (SPEC §4.9).

During a rolling upgrade the previous version keeps writing while the new one has
migrated, so a migration may only expand the schema: add tables, indexes, and
columns that are nullable or have a server default. Whatever would break the
previous version's reads or writes (dropping or renaming a table, column or index,
retyping a column or making it NOT NULL, clearing or deleting rows) belongs to a
later, marked contract step, released once no version that needs the old shape can
still run. A migration marks itself as one with a module constant naming why:

    CONTRACT = "drops runner_states.foo, unused since 0009 (released in 1.4)"

`violations` reads a migration's `upgrade()` and the module's own functions it
calls, and lists what breaks the rule; it does not run anything.
"""

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass

# Operations that remove or rename something an older version may use.
DESTRUCTIVE_CALLS = frozenset(
    {
        "drop_column",
        "drop_table",
        "drop_index",
        "drop_constraint",
        "rename_table",
        "drop_or_release",  # adoption helpers: drop the snapshotter's columns/tables
        "drop_added_columns",
        "drop_additions_table",
    }
)
# alter_column keywords that change what an older version relies on.
DESTRUCTIVE_ALTERS = frozenset({"new_column_name", "type_", "existing_type_to"})
ADDING_COLUMNS = frozenset({"add_column", "add_columns"})
# SQL that removes, renames, retypes, tightens or clears what exists.
DESTRUCTIVE_SQL = re.compile(
    r"\bDROP\b|\bRENAME\b|\bTRUNCATE\b|\bDELETE\s+FROM\b|SET\s+NOT\s+NULL"
    r"|\bALTER\b.*\bTYPE\b|\bSET\s+(?:\w+\s*=\s*[^,]*,\s*)*\w+\s*=\s*NULL\b",
    re.IGNORECASE | re.DOTALL,
)
EXECUTE_CALLS = frozenset({"execute", "exec_driver_sql"})


@dataclass(frozen=True, slots=True)
class Violation:
    line: int
    what: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.what}"


def contract_reason(source: str) -> str | None:
    """The module's CONTRACT string, if it declares itself a contract step."""
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "CONTRACT" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            and node.value.value.strip()
        ):
            return node.value.value
    return None


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def _reachable(functions: dict[str, ast.FunctionDef], start: str) -> list[ast.FunctionDef]:
    """`start` and the module's functions it calls, directly or not."""
    seen: dict[str, ast.FunctionDef] = {}
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in functions:
            continue
        seen[name] = functions[name]
        todo.extend(
            n.func.id
            for n in ast.walk(functions[name])
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        )
    return list(seen.values())


def _text(node: ast.AST) -> str:
    """The literal text of a SQL argument (f-string parts and sa.text(...) included)."""
    return " ".join(
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )


def _not_null_without_default(column: ast.Call) -> bool:
    keywords = {k.arg: k.value for k in column.keywords}
    nullable = keywords.get("nullable")
    not_null = isinstance(nullable, ast.Constant) and nullable.value is False
    return not_null and "server_default" not in keywords


def _added_columns(call: ast.Call, functions: dict[str, ast.FunctionDef]) -> Iterator[ast.Call]:
    """Column(...) calls given to add_column(s), in the call or in a module function
    that builds them (e.g. `_columns()`)."""
    for arg in call.args[1:]:
        for node in ast.walk(arg):
            if not isinstance(node, ast.Call):
                continue
            if _name(node) == "Column":
                yield node
            elif isinstance(node.func, ast.Name) and node.func.id in functions:
                for inner in _reachable(functions, node.func.id):
                    yield from _columns_in(inner)


def _columns_in(function: ast.FunctionDef) -> Iterator[ast.Call]:
    return (n for n in ast.walk(function) if isinstance(n, ast.Call) and _name(n) == "Column")


def _call_violation(call: ast.Call, functions: dict[str, ast.FunctionDef]) -> str | None:
    name = _name(call)
    if name in DESTRUCTIVE_CALLS:
        return f"{name}(...) removes what an older version may use"
    if name == "alter_column":
        keywords = {k.arg: k.value for k in call.keywords}
        nullable = keywords.get("nullable")
        if isinstance(nullable, ast.Constant) and nullable.value is False:
            return "alter_column(nullable=False) makes an existing column NOT NULL"
        changed = sorted(k for k in keywords if k in DESTRUCTIVE_ALTERS)
        if changed:
            return f"alter_column({', '.join(changed)}) renames or retypes a column"
    if name in ADDING_COLUMNS and any(
        _not_null_without_default(c) for c in _added_columns(call, functions)
    ):
        return f"{name}(...) adds a NOT NULL column without a server default"
    if name in EXECUTE_CALLS and call.args:
        sql = _text(call.args[0])
        found = DESTRUCTIVE_SQL.search(sql)
        if found:
            return f"{name}({found.group(0)!r} ...) removes, renames or clears what exists"
    return None


def violations(source: str) -> list[Violation]:
    """What `upgrade()` does that an older version running beside it cannot take."""
    tree = ast.parse(source)
    functions = _functions(tree)
    found = []
    for function in _reachable(functions, "upgrade"):
        for node in ast.walk(function):
            if isinstance(node, ast.Call):
                what = _call_violation(node, functions)
                if what:
                    found.append(Violation(node.lineno, what))
    return sorted(found, key=lambda v: v.line)
