"""The chart's alerts and Grafana dashboard, checked with promtool (built from its Go
module) and against a real daemon's /metrics.

- every alert of files/alerts.yaml, as the chart renders it, passes its unit tests
  (tests/alerts/alerts_test.yaml, `promtool test rules`), and each alert made never
  to fire, or always to fire, fails them: no alert goes untested either way;
- every PromQL expression of the rules and of the dashboard parses (`promtool check
  rules`; the dashboard's are wrapped as recording rules, Grafana's variables given
  values) and names only metrics that a daemon running against the real API server
  and PostgreSQL exports;
- that daemon, healthy, fires none of the alerts (its scraped series replayed
  through promtool).
"""

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from tests.conftest import skip_or_fail
from tests.support.apiserver import REPO, TestCluster, built_binaries
from tests.support.arc_sim import SimulatedArc
from tests.support.daemon_process import DaemonProcess
from tests.support.db_rows import rows
from tests.support.postgres import free_port
from tests.support.waiting import eventually

CHART = REPO / "charts" / "github-runners-snapshotter"
UNIT_TESTS = REPO / "tests" / "alerts" / "alerts_test.yaml"
RELEASE, NAMESPACE = "github-runners-snapshotter", "primus-lens"  # as alerts_test.yaml assumes
TARGET = {"job": RELEASE, "namespace": NAMESPACE, "instance": "10.0.0.1:8080"}
# Grafana's variables, given values a query could have
GRAFANA = {"$__rate_interval": "5m", "$job": ".*"}
NEVER, ALWAYS = "vector(1) < 0", "vector(1)"


@pytest.fixture(scope="module")
def promtool() -> Path:
    bindir = built_binaries("promtool")
    if bindir is None:
        skip_or_fail("promtool is not built: run hack/testbin/build.sh promtool")
    return bindir / "promtool"


@pytest.fixture(scope="module")
def rules() -> dict[str, Any]:
    """The `spec` of the chart's PrometheusRule with the default values."""
    bindir = built_binaries("helm")
    if bindir is None:
        skip_or_fail("helm is not built: run hack/testbin/build.sh helm")
    command = [str(bindir / "helm"), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    command += ["--kube-version", "1.35.4", "--set", "prometheusRule.enabled=true"]
    command += ["--show-only", "templates/prometheusrule.yaml"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    spec: dict[str, Any] = yaml.safe_load(output)["spec"]
    return spec


def alerts_of(rules: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in rules["groups"] for rule in group["rules"]]


def run_promtool(promtool: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args], capture_output=True, text=True, cwd=cwd, timeout=60, check=False
    )


def unit_test(
    promtool: Path, rules: dict[str, Any], directory: Path, tests: Path
) -> subprocess.CompletedProcess[str]:
    """`promtool test rules` of `tests` on `rules`. Annotations are left out: promtool
    compares them word for word, and `promtool check rules` checks their templates."""
    stripped = {
        "groups": [
            {
                **group,
                "rules": [
                    {k: v for k, v in r.items() if k != "annotations"} for r in group["rules"]
                ],
            }
            for group in rules["groups"]
        ]
    }
    (directory / "rules.yaml").write_text(yaml.safe_dump(stripped))
    if tests.parent != directory:
        shutil.copy(tests, directory / tests.name)
    return run_promtool(promtool, "test", "rules", tests.name, cwd=directory)


def test_every_alert_passes_its_promtool_unit_tests(
    promtool: Path, rules: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "full.yaml").write_text(yaml.safe_dump(rules))
    check = run_promtool(promtool, "check", "rules", "full.yaml", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    names = {rule["alert"] for rule in alerts_of(rules)}
    assert len(names) == 9
    tested = set(re.findall(r"alertname: (\w+)", UNIT_TESTS.read_text()))
    assert names == tested
    result = unit_test(promtool, rules, tmp_path, UNIT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def with_expression(rules: dict[str, Any], alert: str, expr: str) -> dict[str, Any]:
    groups = [
        {**g, "rules": [{**r, "expr": expr} if r["alert"] == alert else r for r in g["rules"]]}
        for g in rules["groups"]
    ]
    return {"groups": groups}


def unit_tests_of(alert: str, directory: Path) -> Path:
    """The unit tests that evaluate `alert`, as a file of their own in `directory`."""
    tests = yaml.safe_load(UNIT_TESTS.read_text())
    tests["tests"] = [
        t for t in tests["tests"] if any(c["alertname"] == alert for c in t["alert_rule_test"])
    ]
    path = directory / f"{alert}_test.yaml"
    path.write_text(yaml.safe_dump(tests))
    return path


def test_a_broken_alert_fails_its_unit_tests(
    promtool: Path, rules: dict[str, Any], tmp_path: Path
) -> None:
    survivors = []
    for rule in alerts_of(rules):
        tests = unit_tests_of(rule["alert"], tmp_path)
        for broken in (NEVER, ALWAYS):
            mutant = with_expression(rules, rule["alert"], broken)
            if unit_test(promtool, mutant, tmp_path, tests).returncode == 0:
                survivors.append((rule["alert"], broken))
    assert survivors == []


# -- the expressions and the daemon's metrics ---------------------------------------

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers left once label values,
    matchers, ranges and grouping labels are removed, that do not call a function."""
    text = _STRINGS.sub("", expr)
    for pattern in (_MATCHERS, _RANGES, _GROUPING):
        text = pattern.sub(" ", text)
    return {
        m.group()
        for m in _IDENTIFIER.finditer(text)
        if not text[m.end() :].lstrip().startswith("(") and m.group().lower() not in _KEYWORDS
    }


def test_the_metric_name_reader_reads_what_promql_selects() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, name) "
        '(rate(snapshoter_job_seconds_bucket{job=~".*"}[5m])))'
        " / on (job) group_left () snapshotter_b > bool 1 and absent(snapshotter_c)"
    )
    assert metric_names(expr) == {"snapshoter_job_seconds_bucket", "snapshotter_b", "snapshotter_c"}


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    expressions = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"an unknown Grafana variable in {target['expr']}"
            expressions.append(expr)
    assert len(expressions) >= 15
    return expressions


def exported_names(body: str) -> set[str]:
    """Every series name /metrics exports, with the suffixes of its type (a labelled
    metric exports its family before its first series)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    names: set[str] = set()
    for family in text_string_to_metric_families(body):
        names.update(sample.name for sample in family.samples)
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


@pytest.fixture
def scraped(
    kube: TestCluster, sim: SimulatedArc, ers: dict[str, Any], pg_engine: Engine, tmp_path: Path
) -> str:
    """/metrics of a daemon that recorded two jobs."""
    engine = pg_engine
    daemon = DaemonProcess(
        kube, sim.namespace, engine, tmp_path, interval_seconds=2, metrics={"port": free_port()}
    )
    daemon.start()
    try:
        eventually(daemon.started, timeout=60)
        for _ in range(2):
            sim.run_job(ers, lifetime=0.05)
        eventually(lambda: len(rows(engine, "github_workflow_runs")) == 2, timeout=60)
        status, body = daemon.get("/metrics")
    finally:
        daemon.kill()
    assert status == 200
    return body


def input_series(body: str) -> list[dict[str, str]]:
    """The scraped samples as promtool input series, constant for 20 minutes, with the
    labels a ServiceMonitor adds (honorLabels: a sample's own labels win)."""
    series = []
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            labels = {**TARGET, **sample.labels}
            matchers = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
            series.append(
                {"series": f"{sample.name}{{{matchers}}}", "values": f"{sample.value:f}x20"}
            )
    return series


def fired(promtool: Path, rules: dict[str, Any], body: str, directory: Path) -> str:
    """What promtool says fires on the scraped daemon's series within 20 minutes
    (empty: nothing)."""
    checks = [
        {"eval_time": "20m", "alertname": rule["alert"], "exp_alerts": []}
        for rule in alerts_of(rules)
    ]
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {"interval": "1m", "input_series": input_series(body), "alert_rule_test": checks}
        ],
    }
    path = directory / "healthy_test.yaml"
    path.write_text(yaml.safe_dump(test))
    result = unit_test(promtool, rules, directory, path)
    return "" if result.returncode == 0 else result.stdout + result.stderr


@pytest.mark.timeout(300)
def test_rules_and_dashboard_name_only_exported_metrics_and_a_healthy_daemon_fires_none(
    promtool: Path, rules: dict[str, Any], scraped: str, tmp_path: Path
) -> None:
    dashboard = dashboard_expressions()
    alerts = [rule["expr"] for rule in alerts_of(rules)]
    recording = [{"record": f"dashboard:query_{n}", "expr": e} for n, e in enumerate(dashboard)]
    (tmp_path / "dashboard.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "d", "rules": recording}]})
    )
    check = run_promtool(promtool, "check", "rules", "dashboard.yaml", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr

    body = scraped
    named = {name for expr in dashboard + alerts for name in metric_names(expr)}
    assert len(named) >= 15
    assert named - exported_names(body) == set()
    assert fired(promtool, rules, body, tmp_path) == ""
