"""Build diff inputs from raw objects, the way the sync layer does, for unit tests."""

import itertools
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from snapshotter.diff.observed import Input, Observed, Vanished, sighting
from snapshotter.diff.state import SyncState
from snapshotter.model import parse
from snapshotter.model.records import EPHEMERAL_RUNNER_SETS, RUNNER_SETS, RUNNERS
from snapshotter.model.versions import Version

_seq = itertools.count(1)
_PARSERS: dict[str, Callable[[Mapping[str, Any]], parse.Parsed[Any]]] = {
    RUNNER_SETS: parse.parse_runner_set,
    EPHEMERAL_RUNNER_SETS: parse.parse_ephemeral_runner_set,
    RUNNERS: parse.parse_ephemeral_runner,
}


def observed(
    resource: str, raw: Mapping[str, Any], at: datetime, *, deleted: bool = False
) -> Observed[Any]:
    record = _PARSERS[resource](raw).record
    ident = record.identity
    version = Version(ident.resource_version, next(_seq))
    return sighting(resource, ident.uid, record, version=version, at=at, deleted=deleted)


def full_list(
    state: SyncState,
    at: datetime,
    *,
    rv: str = "1000000",
    runner_sets: Iterable[Mapping[str, Any]] = (),
    ephemeral_runner_sets: Iterable[Mapping[str, Any]] = (),
    runners: Iterable[Mapping[str, Any]] = (),
) -> list[Input]:
    """A complete list of all three resources at `rv`, as observations plus the
    absence of every live object it does not show."""
    listed = Version(rv, next(_seq))
    inputs: list[Input] = []
    live: dict[str, Mapping[str, Any]] = {
        RUNNER_SETS: state.runner_sets,
        EPHEMERAL_RUNNER_SETS: state.ephemeral_runner_sets,
        RUNNERS: state.runners,
    }
    groups = {
        RUNNER_SETS: list(runner_sets),
        EPHEMERAL_RUNNER_SETS: list(ephemeral_runner_sets),
        RUNNERS: list(runners),
    }
    for resource, items in groups.items():
        seen = {raw["metadata"]["uid"] for raw in items}
        inputs += [observed(resource, raw, at) for raw in items]
        inputs += [Vanished(resource, uid, listed, at) for uid in live[resource] if uid not in seen]
    return inputs


def runner_events(
    at: datetime,
    *,
    changed: Iterable[Mapping[str, Any]] = (),
    deleted: Iterable[Mapping[str, Any]] = (),
) -> list[Input]:
    """Watch events for EphemeralRunners (ADDED/MODIFIED, and DELETED with last state)."""
    return [
        *(observed(RUNNERS, raw, at) for raw in changed),
        *(observed(RUNNERS, raw, at, deleted=True) for raw in deleted),
    ]
