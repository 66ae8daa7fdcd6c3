"""Configuration: YAML + environment, every problem reported with its key."""

import os
from pathlib import Path

import pytest

from snapshotter.db.engine import masked_url
from snapshotter.errors import ConfigError
from snapshotter.settings import (
    LeaderElectionSettings,
    Settings,
    environment_source,
    load_settings,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "snapshotter.yaml"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SNAPSHOTTER_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    settings = load_settings(None)
    assert settings.interval_seconds == 10
    assert settings.database.url is None
    assert settings.database.effective_url() == "sqlite:///snapshotter.db"
    assert settings.namespaces == ()


def test_documented_example_is_valid_and_holds_the_defaults() -> None:
    settings = load_settings(EXAMPLE)
    defaults = load_settings(None)
    assert settings.model_dump(exclude={"workflow_configs"}) == defaults.model_dump(
        exclude={"workflow_configs"}
    )
    assert settings.workflow_configs  # the example declares one


def test_every_problem_is_listed_with_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        """
interval_seconds: 0
colour: blue
database:
  url: mysql://u:p@h/db
kubernetes:
  page_size: lots
logging:
  format: xml
workflow_configs:
  - runner_set_name: x
""",
    )
    monkeypatch.setenv("SNAPSHOTTER_INTERVAL", "5")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    problems = info.value.problems
    assert problems[0] == "environment variable SNAPSHOTTER_INTERVAL: unknown setting"
    keys = [p.split(":", 1)[0] for p in problems[1:]]
    assert sorted(keys) == sorted(
        [
            "interval_seconds",
            "colour",
            "database.url",
            "kubernetes.page_size",
            "logging.format",
            "workflow_configs.0.name",
        ]
    )
    assert "colour: unknown key" in problems
    # a URL may hold a password: its value is never echoed
    assert all("u:p" not in p for p in problems)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "interval_seconds: 30\ndatabase:\n  auto_migrate: false\n")
    monkeypatch.setenv("SNAPSHOTTER_INTERVAL_SECONDS", "5")
    monkeypatch.setenv(
        "SNAPSHOTTER_DATABASE__URL", "postgresql+psycopg2://lens:s3cret@db:5432/lens"
    )
    settings = load_settings(path)
    assert settings.interval_seconds == 5
    assert settings.database.auto_migrate is False  # nested keys merge
    assert (
        masked_url(settings.database.effective_url())
        == "postgresql+psycopg2://lens:***@db:5432/lens"
    )
    assert "s3cret" not in settings.model_dump_json()


def test_unknown_nested_environment_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPSHOTTER_DATABASE__BOGUS", "1")
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    assert info.value.problems == [
        "environment variable SNAPSHOTTER_DATABASE__BOGUS: unknown setting"
    ]


@pytest.mark.parametrize(
    ("environ", "loc", "variable"),
    [
        ({"SNAPSHOTTER_DATABASE__URL": "x"}, ("database", "url"), "SNAPSHOTTER_DATABASE__URL"),
        (
            {"snapshotter_interval_seconds": "x"},
            ("interval_seconds",),
            "snapshotter_interval_seconds",
        ),
        ({"SNAPSHOTTER_DATABASE": '{"url": "x"}'}, ("database", "url"), "SNAPSHOTTER_DATABASE"),
        ({"SNAPSHOTTER_DATABASE": '{"url": "x"}'}, ("database", "timeout_seconds"), None),
        ({"SNAPSHOTTER_NAMESPACES": '["a", "B"]'}, ("namespaces", 1), "SNAPSHOTTER_NAMESPACES"),
        ({"SNAPSHOTTER_NAMESPACES": "[a"}, ("namespaces", 1), None),
        ({"SNAPSHOTTER_WATCH__ENABLED": "x"}, ("database", "url"), None),
        ({}, ("interval_seconds",), None),
    ],
)
def test_the_source_of_a_value_is_found_by_its_path(
    environ: dict[str, str], loc: tuple[str | int, ...], variable: str | None
) -> None:
    assert environment_source(loc, environ) == variable


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- a\n- b\n", "the top level must be a mapping"),
        ("a: [unclosed\n", "not valid YAML"),
    ],
)
def test_unreadable_files(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_settings(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_settings(tmp_path / "nope.yaml")


def test_duplicate_workflow_configs_for_one_runner_set(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
workflow_configs:
  - {name: a, runner_set_namespace: ns, runner_set_name: s}
  - {name: b, runner_set_namespace: ns, runner_set_name: s}
""",
    )
    with pytest.raises(ConfigError, match="two configs for runner set ns/s"):
        load_settings(path)


def test_numbers_are_not_booleans_and_namespaces_are_dns_labels(tmp_path: Path) -> None:
    path = write(tmp_path, 'interval_seconds: true\nnamespaces: ["", "Bad_NS!", "ok-ns"]\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert [p.split(":", 1)[0] for p in info.value.problems] == [
        "interval_seconds",
        "namespaces.0",
        "namespaces.1",
    ]
    assert "not a namespace name" in info.value.problems[1]


def test_secret_query_parameters_never_show_in_a_masked_url() -> None:
    url = "postgresql://lens@db/lens?sslmode=require&password=SECRET"
    assert masked_url(url) == "postgresql://lens@db/lens?sslmode=require"


def test_the_lease_name_is_suffixed_with_the_cluster_name() -> None:
    assert Settings().lease_name == "github-runners-snapshotter"
    assert Settings(cluster_name="east").lease_name == "github-runners-snapshotter-east"
    named = Settings(cluster_name="east", leader_election=LeaderElectionSettings(lease_name="mine"))
    assert named.lease_name == "mine"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "cluster_name: My Cluster/Prod\nleader_election: {enabled: true}\n",
            "cluster_name: 'My Cluster/Prod' makes the Lease name",
        ),
        (
            "leader_election: {enabled: true, lease_name: Snap_Lease}\n",
            "leader_election.lease_name: 'Snap_Lease' is not a Kubernetes object name",
        ),
    ],
)
def test_a_lease_name_kubernetes_would_refuse_is_a_config_error(
    tmp_path: Path, text: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_settings(write(tmp_path, text))


def test_any_cluster_name_without_leader_election_or_with_a_named_lease(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "cluster_name: My Cluster/Prod\n")).cluster_name
    named = "cluster_name: My Cluster\nleader_election: {enabled: true, lease_name: snap.a-1}\n"
    assert load_settings(write(tmp_path, named)).lease_name == "snap.a-1"
    valid = "cluster_name: prod-east.1\nleader_election: {enabled: true}\n"
    assert (
        load_settings(write(tmp_path, valid)).lease_name == "github-runners-snapshotter-prod-east.1"
    )
