"""Which configs a finished runner's run rows are written for (SPEC §3.5): the
cluster, the branch and the workflow of the run, as the runner's row has them."""

from dataclasses import replace
from typing import Any

import pytest

from snapshotter.diff.matching import (
    CompiledConfig,
    RunFacts,
    WorkflowConfig,
    compile_config,
    compile_filter,
    matching_configs,
)
from snapshotter.diff.rows import RunnerStateRow
from snapshotter.diff.runs import run_rows
from tests.support import arc_objects as arc
from tests.support.observing import runner_events
from tests.support.scenario import T1, diff, loaded


def finished(cluster: dict[str, Any]) -> RunnerStateRow:
    """The busy runner (ci.yaml on main), deleted after its job."""
    gone = arc.bumped(cluster["busy"], "50")
    changes, _ = diff(loaded(cluster), runner_events(T1, deleted=[gone]), T1)
    [row] = [w.row for w in changes.runners]
    assert (row.workflow_name, row.head_branch, row.completion_source) == (
        "ci.yaml",
        "main",
        "deleted",
    )
    return row


def only(**kw: Any) -> tuple[CompiledConfig, ...]:
    values: dict[str, Any] = {
        "id": 7,
        "name": "c",
        "runner_set_namespace": "",
        "runner_set_name": "",
        "cluster_name": "",
        "workflow_filter": None,
        "branch_filter": None,
    }
    return (compile_config(WorkflowConfig(**{**values, **kw})),)


def config_ids(row: RunnerStateRow, configs: tuple[CompiledConfig, ...]) -> list[int]:
    return [r.config_id for r in run_rows(row, configs, cluster_name="prod")]


def test_a_config_for_this_cluster_gets_its_runs(cluster: dict[str, Any]) -> None:
    row = finished(cluster)
    assert config_ids(row, only(cluster_name="prod")) == [7]
    assert config_ids(row, only(cluster_name="staging")) == []
    facts = RunFacts("arc-runners", "arc-linux-x64", ("ci.yaml",), True, "main")
    assert [c.id for c in matching_configs(only(cluster_name="prod"), facts, cluster_name="prod")]
    assert matching_configs(only(cluster_name="prod"), facts, cluster_name="staging") == []


def test_a_branch_filter_leaves_out_runs_of_other_branches(cluster: dict[str, Any]) -> None:
    row = finished(cluster)
    assert config_ids(row, only(branch_filter="main")) == [7]
    assert config_ids(row, only(branch_filter="release/*")) == []


def test_a_workflow_known_by_its_name_alone_is_filtered(cluster: dict[str, Any]) -> None:
    """No workflow ref (so no file or path), but the run's workflow name is known."""
    row = replace(finished(cluster), job_workflow_ref=None, workflow_name="deploy")
    assert config_ids(row, only(workflow_filter="ci.yaml")) == []
    assert config_ids(row, only(workflow_filter="deploy")) == [7]
    # neither known: a workflow filter cannot tell, and lets the run through
    unknown = replace(row, workflow_name=None)
    assert config_ids(unknown, only(workflow_filter="ci.yaml")) == [7]


@pytest.mark.parametrize(
    ("pattern", "value"),
    [
        ("[a-c]-[x]", "b-x"),  # a `-` between two bracket groups is no range
        ("[[]x", "[x"),  # a `[` inside a bracket group
    ],
)
def test_bracket_groups_are_read_one_after_the_other(pattern: str, value: str) -> None:
    assert compile_filter(pattern).matches(value)
