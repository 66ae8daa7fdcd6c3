"""Objects the database refused, kept until they are written (SPEC §4.8, §7).

A refused object is recorded in `snapshotter_rejects` with the error and with
everything received about it (the coalesced observation, or the list that found it
gone), so that it can be written once the cause is gone: a retry (at start-up,
periodically, or asked for by `snapshotter rejects retry`) applies it again, and a
later observation of the same object is applied together with it. One row per
object: a new refusal replaces the previous one. Count and history rows that were
refused are recorded without a payload: the next flush computes them again.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Connection, Table, and_, delete, func, select, update

from snapshotter.db import tables
from snapshotter.diff.changes import RejectedObject
from snapshotter.diff.observed import Input, Observed, Vanished
from snapshotter.model.records import (
    EPHEMERAL_RUNNER_SETS,
    RUNNER_SETS,
    RUNNERS,
    EphemeralRunnerRecord,
    EphemeralRunnerSetRecord,
    RunnerSetRecord,
)

REJECTS: Table = tables.Reject.__table__  # type: ignore[assignment]
RECORDS: dict[str, type[Any]] = {
    RUNNERS: EphemeralRunnerRecord,
    RUNNER_SETS: RunnerSetRecord,
    EPHEMERAL_RUNNER_SETS: EphemeralRunnerSetRecord,
}


@dataclass(frozen=True, slots=True)
class Reject:
    """One refused object as recorded."""

    resource: str
    uid: str
    namespace: str | None
    name: str | None
    resource_version: str
    error: str
    rejected_at: datetime
    payload: tuple[Input, ...]  # empty: a count or history row, or unreadable
    retry_requested: bool


def encode(items: Sequence[Input]) -> dict[str, Any]:
    """What a refused object's inputs are stored as (JSON)."""
    return {"inputs": [_encoded(item) for item in items]}


def _encoded(item: Input) -> dict[str, Any]:
    kind = "observed" if isinstance(item, Observed) else "vanished"
    data: dict[str, Any] = msgspec.to_builtins(item)
    return {"kind": kind, "resource": item.resource, "data": data}


def decode(payload: Any) -> tuple[Input, ...]:
    """The inputs a payload was made from; empty if there are none or they cannot
    be read (a later version wrote them: the row stays for the operator)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        return ()
    try:
        return tuple(_decoded(item) for item in payload["inputs"])
    except (KeyError, TypeError, msgspec.ValidationError):
        return ()


def _decoded(item: dict[str, Any]) -> Input:
    if item["kind"] == "vanished":
        return msgspec.convert(item["data"], Vanished)
    record = RECORDS[item["resource"]]
    observed: Observed[Any] = msgspec.convert(item["data"], Observed[record])  # type: ignore[valid-type]
    return observed


def scope(cluster_name: str) -> Any:
    return REJECTS.c.cluster_name == cluster_name


def record(conn: Connection, values: dict[str, Any], statement: Any) -> None:
    """Replace the object's previous refusal with this one (same transaction)."""
    conn.execute(
        delete(REJECTS).where(
            and_(
                scope(values["cluster_name"]),
                REJECTS.c.resource == values["resource"],
                REJECTS.c.uid == values["uid"],
            )
        )
    )
    conn.execute(statement, [values])


def values_of(
    rejected: RejectedObject, *, cluster_name: str, payload: Sequence[Input], now: datetime
) -> dict[str, Any]:
    return {
        "cluster_name": cluster_name,
        "resource": rejected.resource,
        "uid": rejected.uid,
        "namespace": rejected.namespace,
        "name": rejected.name,
        "resource_version": rejected.resource_version,
        "error": rejected.error,
        "rejected_at": now,
        "payload": encode(payload) if payload else None,
        "retry_requested_at": None,
    }


def resolve(conn: Connection, cluster_name: str, keys: list[tuple[str, str]]) -> int:
    """Forget refusals of objects that were written now."""
    done = 0
    for resource, uid in keys:
        result = conn.execute(
            delete(REJECTS).where(
                and_(scope(cluster_name), REJECTS.c.resource == resource, REJECTS.c.uid == uid)
            )
        )
        done += result.rowcount or 0
    return done


def load(conn: Connection, cluster_name: str) -> list[Reject]:
    query = select(REJECTS).where(scope(cluster_name)).order_by(REJECTS.c.id)
    return [
        Reject(
            resource=m["resource"],
            uid=m["uid"],
            namespace=m["namespace"],
            name=m["name"],
            resource_version=m["resource_version"],
            error=m["error"],
            rejected_at=m["rejected_at"],
            payload=decode(m["payload"]),
            retry_requested=m["retry_requested_at"] is not None,
        )
        for m in conn.execute(query).mappings()
    ]


def request_retry(conn: Connection, cluster_name: str, now: datetime) -> int:
    result = conn.execute(update(REJECTS).where(scope(cluster_name)).values(retry_requested_at=now))
    return result.rowcount or 0


def clear_retry_requests(conn: Connection, cluster_name: str) -> None:
    """A retry pass ran: what it could not write waits for the next request."""
    requested = REJECTS.c.retry_requested_at.is_not(None)
    conn.execute(
        update(REJECTS).where(scope(cluster_name), requested).values(retry_requested_at=None)
    )


def retry_requested(conn: Connection, cluster_name: str) -> bool:
    query = (
        select(func.count())
        .select_from(REJECTS)
        .where(scope(cluster_name), REJECTS.c.retry_requested_at.is_not(None))
    )
    return bool(conn.execute(query).scalar_one())
