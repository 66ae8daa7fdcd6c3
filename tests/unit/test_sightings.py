"""One observation as the queue holds it (diff/observed.py `sighting`): the job
fields with their receipt time, a terminal phase, a deletionTimestamp, and a
deletion only when the observation is a DELETED event."""

from datetime import UTC, datetime
from typing import Any

from snapshotter.diff.observed import Deleting, JobSighting, sighting
from snapshotter.model import parse
from snapshotter.model.records import RUNNERS
from snapshotter.model.versions import Version
from tests.support import arc_objects as arc
from tests.support.scenario import T1


def runner_sighting(raw: dict[str, Any], **kw: Any) -> Any:
    record = parse.parse_ephemeral_runner(raw).record
    return sighting(RUNNERS, record.identity.uid, record, version=Version("20", 3), at=T1, **kw)


def test_a_sighting_carries_the_job_fields_received_with_it(cluster: dict[str, Any]) -> None:
    obs = runner_sighting(cluster["busy"])
    status: dict[str, Any] = arc.JOB_STATUS
    assert obs.job == JobSighting(
        at=T1,
        job_id=status["jobId"],
        job_request_id=status["jobRequestId"],
        job_repository=status["jobRepositoryName"],
        job_workflow_ref=status["jobWorkflowRef"],
        job_workflow_run_id=status["workflowRunId"],
        job_display_name=status["jobDisplayName"],
    )
    assert (obs.deleted_at, obs.deleting, obs.terminal_at) == (None, None, None)


def test_a_sighting_is_a_deletion_only_when_it_is_a_deleted_event(
    cluster: dict[str, Any],
) -> None:
    assert runner_sighting(cluster["idle"]).deleted_at is None
    assert runner_sighting(cluster["idle"], deleted=True).deleted_at == T1


def test_a_deletion_timestamp_is_kept_with_when_it_was_first_received(
    cluster: dict[str, Any],
) -> None:
    deleting = arc.bumped(
        cluster["idle"], "20", metadata={"deletionTimestamp": "2026-11-28T10:00:05Z"}
    )
    obs = runner_sighting(deleting)
    assert obs.deleting == Deleting(T1, datetime(2026, 11, 28, 10, 0, 5, tzinfo=UTC))
    assert obs.deleted_at is None
