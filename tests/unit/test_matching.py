"""Config matching (SPEC §3.5): scope, exact and glob filters, unknown values."""

import re
from typing import Any

import pytest

from snapshotter.diff.matching import (
    RunFacts,
    WorkflowConfig,
    compile_config,
    compile_filter,
    config_matches,
)

FACTS = RunFacts(
    runner_set_namespace="arc-runners",
    runner_set_name="arc-linux-x64",
    workflow_names=("ci.yaml", "ci.yaml", ".github/workflows/ci.yaml", "test (3.12)"),
    workflow_known=True,
    branch="main",
)


def config(**kw: object) -> WorkflowConfig:
    values: dict[str, object] = {
        "id": 1,
        "name": "c",
        "runner_set_namespace": "",
        "runner_set_name": "",
        "cluster_name": "",
        "workflow_filter": None,
        "branch_filter": None,
    }
    values.update(kw)
    return WorkflowConfig(**values)  # type: ignore[arg-type]


def matches(facts: RunFacts = FACTS, cluster: str = "prod", **kw: Any) -> bool:
    return config_matches(compile_config(config(**kw)), facts, cluster_name=cluster)


def test_empty_config_matches_everything() -> None:
    assert matches()


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"runner_set_namespace": "arc-runners"}, True),
        ({"runner_set_namespace": "other"}, False),
        ({"runner_set_name": "arc-linux-x64"}, True),
        ({"runner_set_name": "arc-linux"}, False),
        ({"cluster_name": "prod"}, True),
        ({"cluster_name": "staging"}, False),
        ({"enabled": False}, False),
    ],
)
def test_scope(kw: dict[str, Any], expected: bool) -> None:
    assert matches(**kw) is expected


@pytest.mark.parametrize(
    ("workflow_filter", "expected"),
    [
        ("ci.yaml", True),  # workflow file
        (".github/workflows/ci.yaml", True),  # workflow path
        ("test (3.12)", True),  # job display name
        ("ci.yml", False),
        ("CI.yaml", False),  # exact means exact
        ("ci.*", True),
        ("*.yaml", True),
        ("test (3.1?)", True),
        ("[abc]i.yaml", True),
        ("[!c]i.yaml", False),
        ("*.yml", False),
        ("ci", False),  # a glob or exact filter matches the whole value
    ],
)
def test_workflow_filter(workflow_filter: str, expected: bool) -> None:
    assert matches(workflow_filter=workflow_filter) is expected


@pytest.mark.parametrize(
    ("branch_filter", "expected"),
    [("main", True), ("release/*", False), ("ma*", True), ("mai", False), ("", True)],
)
def test_branch_filter(branch_filter: str, expected: bool) -> None:
    assert matches(branch_filter=branch_filter) is expected


def test_unknown_workflow_and_branch_match_any_filter() -> None:
    unknown = RunFacts(
        "arc-runners", "arc-linux-x64", workflow_names=(), workflow_known=False, branch=None
    )
    assert matches(unknown, workflow_filter="deploy.yaml", branch_filter="release/*")


def test_display_name_alone_does_not_make_the_workflow_known() -> None:
    facts = RunFacts("ns", "set", workflow_names=("build",), workflow_known=False, branch=None)
    assert matches(facts, workflow_filter="deploy.yaml")


def test_bad_pattern_disables_its_config_with_an_error() -> None:
    compiled = compile_config(config(name="broken", workflow_filter="[z-a]*"))
    assert compiled.error is not None
    assert "broken" in compiled.error
    assert "[z-a]*" in compiled.error
    assert not config_matches(compiled, FACTS, cluster_name="prod")


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("ci[", "unclosed '['"),
        ("[z-a]*", "reversed range 'z-a'"),
        ("a[!]b", "unclosed '['"),
        ("[a][z-a]", "reversed range 'z-a'"),  # the second of two brackets
        ("[z-a]x[ab]", "reversed range 'z-a'"),  # the first of two brackets
    ],
)
def test_malformed_globs_are_rejected(pattern: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        compile_filter(pattern)


@pytest.mark.parametrize(
    ("pattern", "value"),
    [
        ("[]]x", "]x"),
        ("[!]]x", "ax"),
        ("[a-]", "-"),
        ("[-ab]x", "bx"),
        ("a[b-b]c", "abc"),
        ("release-[0-9]*", "release-1.2"),
    ],
)
def test_well_formed_brackets(pattern: str, value: str) -> None:
    assert compile_filter(pattern).matches(value)
