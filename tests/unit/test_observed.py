"""Coalescing observations of one object (diff/observed.py): the newer state wins, every
fact keeps its earliest sighting, and the order of the two arguments does not matter."""

from datetime import timedelta
from typing import Any

import pytest

from snapshotter.diff.observed import Deleting, JobSighting, Observed, merged
from snapshotter.model.records import RUNNERS
from snapshotter.model.versions import Version
from tests.support.scenario import T0, T1, T2

T3 = T2 + timedelta(seconds=10)


def job(at: Any, job_id: str) -> JobSighting:
    return JobSighting(
        at=at,
        job_id=job_id,
        job_request_id=1,
        job_repository="acme-corp/app",
        job_workflow_ref="acme-corp/app/.github/workflows/ci.yaml@refs/heads/main",
        job_workflow_run_id=2,
        job_display_name="build",
    )


def seen(rv: str, at: Any, **facts: Any) -> Observed[str]:
    return Observed(RUNNERS, "er-1", f"state at {rv}", Version(rv, int(rv)), at, **facts)


def both_orders(a: Observed[str], b: Observed[str]) -> list[Observed[str]]:
    return [merged(a, b), merged(b, a)]


def test_the_newer_version_gives_the_state_whichever_argument_it_is() -> None:
    older, newer = seen("5", T2), seen("7", T1)
    for result in both_orders(older, newer):
        assert (result.resource, result.uid) == (RUNNERS, "er-1")
        assert result.record == "state at 7"
        assert result.version == Version("7", 7)
        assert result.at == T1


def test_the_earliest_time_of_each_fact_is_kept_whichever_argument_it_is() -> None:
    a = seen("5", T2, deleted_at=T3, terminal_at=T1, first_at=T0)
    b = seen("7", T3, deleted_at=T2, terminal_at=T2)
    for result in both_orders(a, b):
        assert result.deleted_at == T2
        assert result.terminal_at == T1
        assert result.first_received == T0


@pytest.mark.parametrize("fact", ["deleted_at", "terminal_at"])
def test_a_time_known_to_one_side_only_is_kept(fact: str) -> None:
    for result in both_orders(seen("5", T0, **{fact: T1}), seen("7", T2)):
        assert getattr(result, fact) == T1


def test_the_first_received_sighting_of_the_job_and_of_the_deletion_is_kept() -> None:
    a = seen("5", T2, job=job(T2, "later"), deleting=Deleting(T1, T0))
    b = seen("7", T3, job=job(T1, "first"), deleting=Deleting(T2, T1))
    for result in both_orders(a, b):
        assert result.job == job(T1, "first")
        assert result.deleting == Deleting(T1, T0)


def test_a_sighting_known_to_one_side_only_is_kept() -> None:
    with_facts = seen("5", T0, job=job(T1, "only"), deleting=Deleting(T1, T0))
    for result in both_orders(with_facts, seen("7", T2)):
        assert result.job == job(T1, "only")
        assert result.deleting == Deleting(T1, T0)


def test_the_first_receipt_is_that_of_the_earlier_observation() -> None:
    for result in both_orders(seen("5", T1), seen("7", T2)):
        assert result.first_received == T1
