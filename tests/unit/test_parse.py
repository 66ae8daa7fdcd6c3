"""Parsing of the shared samples and of hand-made variants across ARC 0.9-0.15."""

from datetime import UTC, datetime

import pytest

from snapshotter.errors import ParseError
from snapshotter.model import parse
from snapshotter.model.records import SetKey
from tests.support import arc_objects as arc


@pytest.mark.parametrize("name", sorted(arc.all_samples()))
def test_every_sample_parses_without_warnings(name: str) -> None:
    raw = arc.served(arc.sample(name))
    parser = parse.parse_runner_set if name.startswith("ars-") else parse.parse_ephemeral_runner
    parsed = parser(raw)
    assert parsed.warnings == ()
    assert parsed.record.identity.name == raw["metadata"]["name"]


def test_org_runner_set_sample() -> None:
    raw = arc.served(arc.sample("ars-org"), uid="u-1", rv="42")
    record = parse.parse_runner_set(raw).record
    assert record.identity.uid == "u-1"
    assert record.identity.resource_version == "42"
    assert record.key == SetKey("arc-runners", "arc-linux-x64")
    assert record.github_config_url == "https://github.com/acme-corp"
    assert record.github_config_secret == "arc-linux-x64-gha-rs-github-secret"
    assert record.runner_group == "ci-linux"
    assert (record.min_runners, record.max_runners) == (1, 20)
    assert record.scope is not None
    assert (record.scope.owner, record.scope.repo, record.scope.host) == (
        "acme-corp",
        "",
        "github.com",
    )
    assert record.runner_scale_set_id == 7
    assert record.runner_scale_set_name == "arc-linux-x64"
    assert record.phase == "Running"
    assert record.creation_timestamp == datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    assert record.deletion_timestamp is None


def test_ghes_repo_runner_set_sample() -> None:
    record = parse.parse_runner_set(arc.served(arc.sample("ars-repo-ghes"))).record
    assert record.scope is not None
    assert record.scope.host == "ghes.acme.internal"
    assert (record.scope.owner, record.scope.repo) == ("platform", "payments-api")
    assert record.runner_group is None
    assert (record.min_runners, record.max_runners) == (0, 4)
    assert record.runner_scale_set_name == "payments-gpu"  # spec wins over metadata.name
    assert record.runner_scale_set_id == 12


def test_running_runner_with_job_sample() -> None:
    record = parse.parse_ephemeral_runner(arc.served(arc.sample("er-running-job"))).record
    assert record.phase == "Running"
    assert record.ready is True
    assert record.runner_id == 104230
    assert record.runner_name == "arc-linux-x64-7x9kq-runner-k8mzt"
    assert record.job_id == "85cb98eb-2919-5766-872c-cc997f618c1f"
    assert record.job_request_id == 5123987
    assert record.job_repository == "acme-corp/payments-api"
    assert record.job_workflow_ref == (
        "acme-corp/payments-api/.github/workflows/ci.yaml@refs/pull/481/merge"
    )
    assert record.workflow_run_id == 15320047781
    assert record.job_display_name == "test (3.12)"
    assert record.has_job
    assert record.scale_set == SetKey("arc-runners", "arc-linux-x64")
    assert record.owner_set_uid == "5b0e2a8c-3f1d-4c6e-9a7b-2d4f6e8a0c1e"


def test_pending_runner_sample_counts_pod_failures_and_has_no_job() -> None:
    record = parse.parse_ephemeral_runner(arc.served(arc.sample("er-pending"))).record
    assert record.phase == "Pending"
    assert record.pod_failures == 1
    assert not record.has_job


def test_failed_runner_sample() -> None:
    record = parse.parse_ephemeral_runner(arc.served(arc.sample("er-failed"))).record
    assert record.phase == "Failed"
    assert record.reason == "InvalidPod"
    assert record.message is not None
    assert record.message.startswith("Failed to create the pod")
    assert not record.has_job


def test_runner_without_status_is_a_fresh_runner() -> None:
    raw = arc.merged(arc.served(arc.sample("er-pending")), {"status": None})
    parsed = parse.parse_ephemeral_runner(raw)
    assert parsed.warnings == ()
    record = parsed.record
    assert (record.phase, record.ready, record.runner_id, record.pod_failures) == (
        None,
        None,
        None,
        0,
    )
    assert not record.has_job


def test_arc_012_runner_has_job_without_job_id() -> None:
    # <= 0.12: no status.jobId; the listener still wrote jobRequestId and workflowRunId.
    status = {
        "phase": "Succeeded",
        "ready": False,
        "runnerId": 9,
        "jobRequestId": 77,
        "workflowRunId": 1234,
        "failures": {"pod-a": True},
    }
    raw = arc.merged(arc.served(arc.sample("er-pending")), {"status": status})
    raw["status"] = status
    record = parse.parse_ephemeral_runner(raw).record
    assert record.job_id is None
    assert record.has_job
    assert record.phase == "Succeeded"
    assert record.pod_failures == 1


def test_old_runner_set_state_field_and_absent_counts() -> None:
    raw = arc.served(arc.sample("ars-org"))
    raw["status"] = {"state": "Running"}  # <= 0.13 shape; 0.15 drops the counts
    assert parse.parse_runner_set(raw).record.phase == "Running"
    raw["status"] = {"phase": "", "state": ""}
    assert parse.parse_runner_set(raw).record.phase is None


def test_unknown_phase_is_kept_verbatim() -> None:
    raw = arc.merged(arc.served(arc.sample("er-pending")), {"status": {"phase": "Unknown"}})
    assert parse.parse_ephemeral_runner(raw).record.phase == "Unknown"


@pytest.mark.parametrize(
    ("status", "field", "problem"),
    [
        ({"runnerId": "104233"}, "runner_id", "status.runnerId: expected an integer, got str"),
        ({"ready": "true"}, "ready", "status.ready: expected a boolean, got str"),
        ({"jobId": 42}, "job_id", "status.jobId: expected a string, got int"),
        ({"workflowRunId": -5}, "workflow_run_id", "status.workflowRunId: -5 is out of range"),
        (
            {"jobRequestId": True},
            "job_request_id",
            "status.jobRequestId: expected an integer, got bool",
        ),
        ({"runnerId": 2**64}, "runner_id", "status.runnerId: 18446744073709551616 is out of range"),
        ({"failures": ["a"]}, "pod_failures", "status.failures: expected an object, got list"),
    ],
)
def test_wrong_types_count_as_absent_with_a_warning(
    status: dict[str, object], field: str, problem: str
) -> None:
    raw = arc.served(arc.sample("er-pending"))
    raw["status"] = status
    parsed = parse.parse_ephemeral_runner(raw)
    assert getattr(parsed.record, field) in (None, 0)
    assert len(parsed.warnings) == 1
    assert parsed.warnings[0].startswith(problem)


def test_status_of_wrong_type_is_ignored_with_a_warning() -> None:
    raw = arc.served(arc.sample("er-pending"))
    raw["status"] = "broken"
    parsed = parse.parse_ephemeral_runner(raw)
    assert parsed.record.phase is None
    assert parsed.warnings == ("status: expected an object, got str",)


def test_runner_set_wrong_spec_types() -> None:
    raw = arc.served(arc.sample("ars-org"))
    raw["spec"]["minRunners"] = "1"
    raw["spec"]["maxRunners"] = -3
    raw["spec"]["githubConfigUrl"] = "https://github.com/a/b/c"
    parsed = parse.parse_runner_set(raw)
    assert (parsed.record.min_runners, parsed.record.max_runners) == (0, 0)
    assert parsed.record.scope is None
    assert len(parsed.warnings) == 3
    assert any(
        "githubConfigUrl" in w and "enterprise, organization or repository" in w
        for w in parsed.warnings
    )


def test_bad_timestamp_is_absent_with_a_warning() -> None:
    raw = arc.served(arc.sample("er-pending"), created="yesterday")
    parsed = parse.parse_ephemeral_runner(raw)
    assert parsed.record.creation_timestamp is None
    assert parsed.warnings == ("metadata.creationTimestamp: 'yesterday' is not an RFC 3339 time",)


@pytest.mark.parametrize("missing", ["uid", "namespace", "name", "resourceVersion"])
def test_missing_identity_raises_parse_error(missing: str) -> None:
    raw = arc.served(arc.sample("er-pending"))
    del raw["metadata"][missing]
    with pytest.raises(ParseError, match=r"metadata\.uid, namespace, name or resourceVersion"):
        parse.parse_ephemeral_runner(raw)


def test_metadata_of_wrong_type_raises_parse_error() -> None:
    with pytest.raises(ParseError) as info:
        parse.parse_runner_set({"metadata": ["x"], "spec": {}})
    assert info.value.kind == "AutoscalingRunnerSet"
    assert info.value.ref == "<unnamed>"


def test_annotations_digits_only_become_integers() -> None:
    raw = arc.merged(
        arc.served(arc.sample("er-pending")),
        {
            "metadata": {
                "annotations": {
                    "actions.github.com/run-id": "123",
                    "actions.github.com/job-id": "12a",
                    "actions.github.com/run-number": "٣",  # a non-ASCII digit is not a digit here
                    "actions.github.com/sha": "deadbeef",
                    "actions.github.com/branch": "release/1.x",
                }
            }
        },
    )
    notes = parse.parse_ephemeral_runner(raw).record.annotations
    assert (notes.run_id, notes.job_id, notes.run_number) == (123, None, None)
    assert (notes.sha, notes.branch, notes.workflow) == ("deadbeef", "release/1.x", None)


def test_ephemeral_runner_set_owner_and_replicas() -> None:
    ars = arc.runner_set(uid="ars-uid")
    ers = parse.parse_ephemeral_runner_set(arc.ephemeral_runner_set(ars, replicas=3)).record
    assert ers.replicas == 3
    assert ers.owner_uid == "ars-uid"
    assert ers.scale_set == SetKey("arc-runners", "arc-linux-x64")


def test_deletion_timestamp_is_parsed() -> None:
    raw = arc.served(arc.sample("er-running-job"), deletionTimestamp="2026-11-28T10:00:05Z")
    record = parse.parse_ephemeral_runner(raw).record
    assert record.deletion_timestamp == datetime(2026, 11, 28, 10, 0, 5, tzinfo=UTC)
