"""Build diff inputs from raw objects, the way the sync layer does, for unit tests."""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from snapshotter.diff.state import Observation, Observed, PersistedState
from snapshotter.model import parse

Parser = Callable[[Mapping[str, Any]], parse.Parsed[Any]]


def _observed(
    items: Iterable[Mapping[str, Any]],
    parser: Parser,
    versions: Mapping[str, str],
    *,
    complete: bool,
) -> Observed[Any]:
    changed: dict[str, Any] = {}
    unchanged: set[str] = set()
    for raw in items:
        record = parser(raw).record
        uid = record.identity.uid
        if versions.get(uid) == record.identity.resource_version:
            unchanged.add(uid)
        else:
            changed[uid] = record
    return Observed(changed=changed, unchanged=frozenset(unchanged), complete=complete)


def full_list(
    state: PersistedState,
    *,
    runner_sets: Iterable[Mapping[str, Any]] = (),
    ephemeral_runner_sets: Iterable[Mapping[str, Any]] = (),
    runners: Iterable[Mapping[str, Any]] = (),
) -> Observation:
    """A complete list of all three resources."""
    return Observation(
        runner_sets=_observed(
            runner_sets,
            parse.parse_runner_set,
            {u: r.resource_version for u, r in state.runner_sets.items()},
            complete=True,
        ),
        ephemeral_runner_sets=_observed(
            ephemeral_runner_sets,
            parse.parse_ephemeral_runner_set,
            {u: r.identity.resource_version for u, r in state.ephemeral_runner_sets.items()},
            complete=True,
        ),
        runners=_observed(
            runners,
            parse.parse_ephemeral_runner,
            {u: r.resource_version for u, r in state.runners.items()},
            complete=True,
        ),
    )


def runner_events(
    *, changed: Iterable[Mapping[str, Any]] = (), deleted: Iterable[Mapping[str, Any]] = ()
) -> Observation:
    """Watch events for EphemeralRunners (ADDED/MODIFIED, and DELETED with last state)."""

    def records(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        parsed = [parse.parse_ephemeral_runner(raw).record for raw in items]
        return {r.identity.uid: r for r in parsed}

    return Observation(runners=Observed(changed=records(changed), deleted=records(deleted)))
