"""Writes the `config` part of the chart's values.schema.json from snapshotter/settings.py.

    .venv/bin/python hack/chart_schema.py          # rewrite it
    .venv/bin/python hack/chart_schema.py --check  # exit 1 if it is out of date

`config` in the chart's values is the snapshotter's configuration file, so its schema
is the Settings model's own JSON schema (pydantic), references inlined and titles
dropped: `helm install` then refuses what `snapshotter config check` would refuse
(unknown keys, wrong types, out-of-range numbers) before any pod crash-loops. The
rest of values.schema.json (the chart's own keys) is written by hand.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from snapshotter.settings import Settings

CHART = Path(__file__).resolve().parents[1] / "charts" / "github-runners-snapshotter"
SCHEMA = CHART / "values.schema.json"
DESCRIPTION = (
    "The snapshotter's configuration (config/snapshotter.yaml), generated from "
    "snapshotter/settings.py by hack/chart_schema.py. database.url is refused by the "
    "chart: the URL comes from database.existingSecret."
)


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    """`node` with every `$ref` replaced by its definition, and no `title`."""
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].removeprefix("#/$defs/")
        return _inline(definitions[name], definitions)
    return {key: _inline(value, definitions) for key, value in node.items() if key != "title"}


def config_schema() -> dict[str, Any]:
    generated = Settings.model_json_schema()
    definitions = generated.pop("$defs", {})
    schema: dict[str, Any] = _inline(generated, definitions)
    schema["description"] = DESCRIPTION
    return schema


def rendered() -> str:
    values_schema = json.loads(SCHEMA.read_text())
    values_schema["properties"]["config"] = config_schema()
    return json.dumps(values_schema, indent=2) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare, exit 1 on drift")
    args = parser.parse_args()
    text = rendered()
    if not args.check:
        SCHEMA.write_text(text)
        return 0
    if SCHEMA.read_text() != text:
        print(f"{SCHEMA.name} is out of date with snapshotter/settings.py (run {__file__})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
