"""Launchers and workers (Lens's `runner_type`): the pattern, the diff's rule that a
worker's job makes no run row, and the setting's validation."""

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from snapshotter.diff import compute
from snapshotter.diff.runner_kinds import RunnerKinds
from snapshotter.errors import ConfigError
from snapshotter.settings import load_settings
from tests.support import arc_objects as arc
from tests.support.observing import runner_events
from tests.support.scenario import CONTEXT, T1, loaded


def test_every_runner_is_a_launcher_without_a_pattern() -> None:
    # stock ARC names every runner <set>-runner-<suffix>: Lens's own rule would make
    # all of them workers
    assert RunnerKinds.from_pattern(None).of("arc-linux-x64-7x9kq-runner-k8mzt") == "launcher"


def test_the_pattern_is_searched_in_the_name() -> None:
    kinds = RunnerKinds.from_pattern(r"-worker-\d+$")
    assert kinds.of("train-abc-worker-3") == "worker"
    assert kinds.of("train-abc-worker-3x") == "launcher"
    assert kinds.of("train-abc-runner-k8mzt") == "launcher"


def test_a_finished_worker_makes_no_run_row(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    deleting = arc.bumped(
        cluster["busy"], "40", metadata={"deletionTimestamp": "2026-11-28T10:00:07Z"}
    )
    name = cluster["busy"]["metadata"]["name"]
    inputs = runner_events(T1, changed=[deleting])
    for kinds, runs in ((RunnerKinds.from_pattern(None), 1), (RunnerKinds.from_pattern(name), 0)):
        context = replace(CONTEXT, runner_kinds=kinds)
        changes = compute.compute_changes(state, inputs, context=context, now=T1)
        assert len(changes.runs) == runs
        assert [w.row.is_completed for w in changes.runners] == [True]  # state still written
        assert len(changes.finished) == 1


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ('"(["', "not a valid regular expression"),
        ('""', "must be a regular expression, or null for none"),
    ],
)
def test_a_bad_worker_pattern_is_a_config_error(tmp_path: Path, pattern: str, problem: str) -> None:
    path = tmp_path / "snapshotter.yaml"
    path.write_text(f"lens:\n  worker_name_pattern: {pattern}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    [message] = info.value.problems
    assert message.startswith("lens.worker_name_pattern: ")
    assert problem in message
