"""The chart's generated files are in step with their sources: README.md with the
comments of values.yaml (hack/chart_readme.py), and the `config` part of
values.schema.json with snapshotter/settings.py (hack/chart_schema.py)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "github-runners-snapshotter"


def script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "hack" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["chart_readme", "chart_schema"])
def test_the_generated_chart_files_are_in_step(name: str) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "hack" / f"{name}.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_value_is_documented_and_a_new_one_would_not_be() -> None:
    readme = script("chart_readme")
    lines = (CHART / "values.yaml").read_text().splitlines()
    docs = readme.documented(lines)
    assert docs["serviceMonitor.sampleLimit"].startswith("The scrape fails past")
    assert "config.metrics.port" not in docs  # documented through `config`
    values = {"rbac": {"create": True, "brandNew": 1}, "config": {"anything": {"deep": 1}}}
    assert readme.undocumented(values, docs) == ["rbac.brandNew"]


def test_the_config_schema_is_the_settings_model() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    config = schema["properties"]["config"]
    assert config["additionalProperties"] is False
    metrics = config["properties"]["metrics"]
    assert metrics["additionalProperties"] is False
    assert set(metrics["properties"]) == {"port", "address", "job_labels", "job_series_cap"}
    assert script("chart_schema").config_schema() == config
