"""Records -> rows (SPEC §3.1, §3.2) and finding a runner's pool (SPEC §1).

The rows here are the mapping of one record as it is now, before the fold in
`runners` and `runner_sets` settles facts, completion and deletion.
"""

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from snapshotter.diff import mapping
from snapshotter.diff.mapping import RunnerSetIndex
from snapshotter.diff.rows import RunnerCounts, RunnerSetRow, RunnerStateRow
from snapshotter.model import parse
from snapshotter.model.pod_resources import PodResources
from snapshotter.model.records import (
    EphemeralRunnerRecord,
    EphemeralRunnerSetRecord,
    RunnerSetRecord,
    SetKey,
)
from tests.support import arc_objects as arc
from tests.support.scenario import T0, T1

POOL_KEY = SetKey("arc-runners", "arc-linux-x64")


def pool_record(uid: str, **kw: Any) -> RunnerSetRecord:
    return parse.parse_runner_set(arc.runner_set(uid=uid, rv="10", **kw)).record


def pool_row(record: RunnerSetRecord) -> RunnerSetRow:
    return mapping.runner_set_row(record, counts=RunnerCounts(), cluster_name="prod", now=T0)


def ers_record(owner: dict[str, Any], uid: str) -> EphemeralRunnerSetRecord:
    raw = arc.ephemeral_runner_set(owner, uid=uid, rv="11")
    return parse.parse_ephemeral_runner_set(raw).record


def runner_record(ers: dict[str, Any], **kw: Any) -> EphemeralRunnerRecord:
    raw = arc.ephemeral_runner(ers, name="arc-linux-x64-7x9kq-runner-aaaaa", uid="er-1", rv="12")
    return replace(parse.parse_ephemeral_runner(raw).record, **kw)


def stray_runner(**kw: Any) -> EphemeralRunnerRecord:
    """A runner with no owner reference and no scale-set labels."""
    ers, _ = one_pool()
    return runner_record(ers, scale_set=None, owner_set_uid=None, **kw)


def one_pool() -> tuple[dict[str, Any], RunnerSetIndex]:
    """One active pool, its EphemeralRunnerSet, and the index over them."""
    ars = arc.runner_set(uid="ars-1", rv="10")
    ers = arc.ephemeral_runner_set(ars, uid="ers-1", rv="11")
    index = RunnerSetIndex(
        {"ars-1": pool_row(parse.parse_runner_set(ars).record)},
        {"ers-1": parse.parse_ephemeral_runner_set(ers).record},
        {POOL_KEY: "ars-1"},
    )
    return ers, index


def test_a_runner_row_carries_what_the_runner_says_now() -> None:
    ers, index = one_pool()
    created = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    deleting = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
    record = runner_record(
        ers,
        phase="Failed",
        ready=False,
        reason="PodFailed",
        message="pod failed twice",
        runner_id=4711,
        runner_name="runner-4711",
        pod_failures=2,
        creation_timestamp=created,
        deletion_timestamp=deleting,
        resources=PodResources({"cpu": 500}, {"cpu": 1000}),
    )
    row = mapping.runner_state_row(record, index=index, cluster_name="prod", at=T1)
    assert row == RunnerStateRow(
        uid="er-1",
        cluster_name="prod",
        namespace="arc-runners",
        name="arc-linux-x64-7x9kq-runner-aaaaa",
        runner_set_uid="ars-1",
        runner_set_name="arc-linux-x64",
        runner_set_namespace="arc-runners",
        phase="Failed",
        ready=False,
        reason="PodFailed",
        message="pod failed twice",
        runner_id=4711,
        runner_name="runner-4711",
        job_id=None,
        job_request_id=None,
        job_repository=None,
        job_workflow_ref=None,
        job_workflow_run_id=None,
        job_display_name=None,
        github_run_id=None,
        github_run_number=None,
        github_job_id=None,
        head_sha=None,
        head_branch=None,
        workflow_name=None,
        pod_failures=2,
        creation_timestamp=created,
        deletion_timestamp=deleting,
        job_assigned_at=None,
        completed_at=None,
        completion_source=None,
        is_completed=False,
        is_deleted=False,
        resource_version="12",
        first_seen_at=T1,
        last_seen_at=T1,
        resource_requests={"cpu": 500},
        resource_limits={"cpu": 1000},
    )


def test_a_runner_of_no_known_pool_and_without_a_template_has_none_of_them() -> None:
    _, index = one_pool()
    record = stray_runner(resources=None)
    assert record.spec_runner_set_name is None
    row = mapping.runner_state_row(record, index=index, cluster_name="prod", at=T1)
    assert (row.runner_set_uid, row.runner_set_name, row.runner_set_namespace) == (None,) * 3
    assert (row.resource_requests, row.resource_limits) == (None, None)


def test_the_owner_chain_names_the_incarnation_the_labels_cannot() -> None:
    """A pool re-created under its name: the runner of the old incarnation still
    belongs to it, although its labels now name the new one too."""
    old = arc.runner_set(uid="ars-old", rv="10")
    new = arc.runner_set(uid="ars-new", rv="20")
    old_ers = arc.ephemeral_runner_set(old, uid="ers-old", rv="11")
    index = RunnerSetIndex(
        {
            "ars-old": pool_row(parse.parse_runner_set(old).record),
            "ars-new": pool_row(parse.parse_runner_set(new).record),
        },
        {"ers-old": parse.parse_ephemeral_runner_set(old_ers).record},
        {POOL_KEY: "ars-new"},
    )
    record = runner_record(old_ers)
    assert record.scale_set == POOL_KEY
    assert index.resolve(record) == ("ars-old", POOL_KEY)


def test_an_ephemeral_runner_set_of_an_unknown_owner_is_found_by_its_labels() -> None:
    """The owner reference names a pool not held (e.g. not seen yet): the
    scale-set labels of the EphemeralRunnerSet find the active pool of that name."""
    _, index = one_pool()
    stranger = arc.runner_set(uid="ars-unknown", rv="5")
    ers = ers_record(stranger, "ers-2")
    assert ers.owner_uid == "ars-unknown"
    assert index.set_of_ephemeral_set(ers) == "ars-1"
    assert index.set_of_ephemeral_set(replace(ers, scale_set=None)) is None


def test_a_runner_without_owner_or_labels_is_found_by_its_spec_runner_set_name() -> None:
    _, index = one_pool()
    record = stray_runner(spec_runner_set_name="arc-linux-x64")
    assert index.resolve(record) == ("ars-1", POOL_KEY)
    row = mapping.runner_state_row(record, index=index, cluster_name="prod", at=T1)
    assert (row.runner_set_uid, row.runner_set_name, row.runner_set_namespace) == (
        "ars-1",
        "arc-linux-x64",
        "arc-runners",
    )
    # a name no active pool has: the key is known, the pool is not (yet)
    other = stray_runner(spec_runner_set_name="arc-gpu")
    assert index.resolve(other) == (None, SetKey("arc-runners", "arc-gpu"))


def test_scale_set_labels_come_before_the_spec_runner_set_name() -> None:
    _, index = one_pool()
    record = replace(stray_runner(spec_runner_set_name="arc-gpu"), scale_set=POOL_KEY)
    assert index.resolve(record) == ("ars-1", POOL_KEY)


def test_a_pool_without_a_github_scope_has_no_owner_repo_enterprise_or_host() -> None:
    record = replace(pool_record("ars-1"), scope=None)
    row = pool_row(record)
    assert (row.github_owner, row.github_repo, row.github_enterprise, row.github_host) == (
        None,
        None,
        None,
        None,
    )
    scoped = pool_row(pool_record("ars-1"))
    assert (scoped.github_owner, scoped.github_host) == ("acme-corp", "github.com")


def test_with_counts_sets_every_count() -> None:
    counts = RunnerCounts(current=1, pending=2, running=3, failed=4, busy=5, desired=6)
    row = mapping.with_counts(pool_row(pool_record("ars-1")), counts)
    assert row.counts == counts
