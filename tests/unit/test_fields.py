"""Which columns of a row changed: bookkeeping columns aside, a value that differs,
or that is equal but of another type, is a change."""

from dataclasses import replace
from decimal import Decimal
from typing import Any, cast

from snapshotter.diff.compute import RUNNER_BOOKKEEPING
from snapshotter.diff.fields import changed_fields
from tests.support.scenario import T2, loaded


def test_a_column_cleared_to_none_is_a_change(cluster: dict[str, Any]) -> None:
    busy = loaded(cluster).runners["er-busy"]
    cleared = replace(busy, reason=None, message=None, ready=None)
    with_reason = replace(busy, reason="Ready", message="up")
    assert changed_fields(with_reason, cleared, ignore=RUNNER_BOOKKEEPING) == {
        "reason": None,
        "message": None,
        "ready": None,
    }


def test_an_equal_value_of_another_type_is_a_change(cluster: dict[str, Any]) -> None:
    """A value read back from the database may compare equal in another type."""
    busy = loaded(cluster).runners["er-busy"]
    as_decimal = replace(busy, pod_failures=cast(Any, Decimal(0)))
    assert busy.pod_failures == 0
    assert changed_fields(as_decimal, busy, ignore=RUNNER_BOOKKEEPING) == {"pod_failures": 0}


def test_bookkeeping_columns_alone_are_no_change(cluster: dict[str, Any]) -> None:
    busy = loaded(cluster).runners["er-busy"]
    seen_again = replace(busy, resource_version="99", last_seen_at=T2)
    assert changed_fields(busy, seen_again, ignore=RUNNER_BOOKKEEPING) == {}
