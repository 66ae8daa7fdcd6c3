"""A small ARC cluster and helpers to diff observations of it with a fixed `now`."""

import copy
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from snapshotter.diff import compute
from snapshotter.diff.changes import ChangeSet
from snapshotter.diff.matching import WorkflowConfig, compile_config
from snapshotter.diff.observed import Input
from snapshotter.diff.state import SyncState, apply_delta
from tests.support import arc_objects as arc
from tests.support.observing import full_list

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=10)
T2 = T0 + timedelta(seconds=20)

CI_CONFIG = WorkflowConfig(
    id=1,
    name="ci",
    runner_set_namespace="arc-runners",
    runner_set_name="arc-linux-x64",
    cluster_name="",
    workflow_filter="ci.yaml",
    branch_filter=None,
)
DEPLOY_CONFIG = WorkflowConfig(
    id=2,
    name="deploy",
    runner_set_namespace="",
    runner_set_name="",
    cluster_name="",
    workflow_filter="deploy.yaml",
    branch_filter=None,
)
OTHER_CLUSTER = WorkflowConfig(
    id=3,
    name="other",
    runner_set_namespace="",
    runner_set_name="",
    cluster_name="staging",
    workflow_filter=None,
    branch_filter=None,
)
CONTEXT = compute.DiffContext(
    "prod", tuple(compile_config(c) for c in (CI_CONFIG, DEPLOY_CONFIG, OTHER_CLUSTER))
)


def diff(state: SyncState, inputs: Sequence[Input], now: datetime) -> tuple[ChangeSet, SyncState]:
    """The ChangeSet, and the state after it committed (the given state is untouched)."""
    changes = compute.compute_changes(state, inputs, context=CONTEXT, now=now)
    after = copy.deepcopy(state)
    apply_delta(after, changes.delta)
    return changes, after


def small_cluster() -> dict[str, Any]:
    """One pool, its EphemeralRunnerSet, an idle runner and a busy one (raw objects)."""
    ars = arc.runner_set(uid="ars-1", rv="10")
    ers = arc.ephemeral_runner_set(ars, uid="ers-1", rv="11", replicas=2)
    idle = arc.ephemeral_runner(
        ers, name="arc-linux-x64-7x9kq-runner-aaaaa", uid="er-idle", rv="12"
    )
    busy = arc.with_job(
        arc.ephemeral_runner(ers, name="arc-linux-x64-7x9kq-runner-bbbbb", uid="er-busy", rv="13")
    )
    return {"ars": ars, "ers": ers, "idle": idle, "busy": busy}


def listed(state: SyncState, c: dict[str, Any], *runners: dict[str, Any], at: datetime) -> Any:
    return full_list(
        state, at, runner_sets=[c["ars"]], ephemeral_runner_sets=[c["ers"]], runners=runners
    )


def loaded(c: dict[str, Any]) -> SyncState:
    _, state = diff(SyncState(), listed(SyncState(), c, c["idle"], c["busy"], at=T0), T0)
    return state
