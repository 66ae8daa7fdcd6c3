"""Writes the chart's README.md from README.md.tpl and the comments of values.yaml.

    .venv/bin/python hack/chart_readme.py          # rewrite charts/.../README.md
    .venv/bin/python hack/chart_readme.py --check  # exit 1 if it is out of date

Like helm-docs: a comment starting with `# --` documents the key on the line below it
(its continuation lines start with `#` too), and becomes a row of the values table
(key, type, default from values.yaml, description) that replaces `<!-- values -->`
in the template. Every leaf of values.yaml must be documented, itself or through a
documented parent, so that a new value cannot ship undocumented.
"""

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1] / "charts" / "github-runners-snapshotter"
MARKER = "<!-- values -->"
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_]+):")
DOC = re.compile(r"^ *# -- ?(?P<text>.*)$")
MORE = re.compile(r"^ *# ?(?P<text>.*)$")


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    description: str


def documented(lines: list[str]) -> dict[str, str]:
    """Dotted key -> description, for every key preceded by a `# --` comment."""
    docs: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    for line in lines:
        doc, more, key = DOC.match(line), MORE.match(line), KEY.match(line)
        if doc:
            pending = [doc.group("text")]
        elif more and pending is not None:
            pending.append(more.group("text"))
        elif key:
            indent = len(key.group("indent"))
            stack = [(i, k) for i, k in stack if i < indent] + [(indent, key.group("key"))]
            if pending is not None:
                docs[".".join(k for _, k in stack)] = " ".join(pending).strip()
            pending = None
        else:
            pending = None
    return docs


def _leaves(values: Any, prefix: str = "") -> list[str]:
    if isinstance(values, dict) and values:
        return [
            leaf
            for key, value in values.items()
            for leaf in _leaves(value, f"{prefix}.{key}" if prefix else str(key))
        ]
    return [prefix]


def undocumented(values: dict[str, Any], docs: dict[str, str]) -> list[str]:
    """Leaves with no documented key on their path."""

    def covered(leaf: str) -> bool:
        parts = leaf.split(".")
        return any(".".join(parts[:n]) in docs for n in range(1, len(parts) + 1))

    return [leaf for leaf in _leaves(values) if not covered(leaf)]


def _type(value: Any) -> str:
    names = {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "object"}
    return names.get(type(value), "null")


def _lookup(values: dict[str, Any], key: str) -> Any:
    node: Any = values
    for part in key.split("."):
        node = node[part]
    return node


def rows(values: dict[str, Any], docs: dict[str, str]) -> list[Row]:
    table = []
    for key, description in docs.items():
        value = _lookup(values, key)
        default = json.dumps(value, separators=(", ", ": "))
        table.append(Row(key, _type(value), default, description.replace("|", "\\|")))
    return table


def rendered() -> str:
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    docs = documented(text.splitlines())
    missing = undocumented(values, docs)
    if missing:
        raise SystemExit(f"values.yaml: undocumented (add a `# --` comment): {', '.join(missing)}")
    lines = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    lines += [
        f"| `{r.key}` | {r.type} | `{r.default}` | {r.description} |" for r in rows(values, docs)
    ]
    template = (CHART / "README.md.tpl").read_text()
    return template.replace(MARKER, "\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare, exit 1 on drift")
    args = parser.parse_args()
    text, readme = rendered(), CHART / "README.md"
    if not args.check:
        readme.write_text(text)
        return 0
    if not readme.exists() or readme.read_text() != text:
        print(f"{readme} is out of date with values.yaml (run {__file__})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
