"""Refused objects the writer still owes the database (SPEC §4.8, §7).

Each refused object is held with what was received about it (its coalesced
observation, or the list that found it gone), as the rejects table has it. A later
observation of the object is applied together with it, so that nothing received is
lost and the earliest facts win; an observation at the very version that was
refused brings no news and is dropped. Once the object is written, its refusal is
resolved in the same transaction. Count and history rows that were refused hold
nothing to replay: a retry lets the next flush compute them again.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from snapshotter.diff.observed import Input, Observed, merged

Key = tuple[str, str]


class Refusal(Protocol):
    """One row of the rejects table, as the store reads it."""

    @property
    def resource(self) -> str: ...

    @property
    def uid(self) -> str: ...

    @property
    def payload(self) -> Sequence[Input]: ...


@dataclass(frozen=True, slots=True)
class Held:
    payload: tuple[Input, ...]  # what to write again (empty: a count or history row)


class Outstanding:
    def __init__(self) -> None:
        self._held: dict[Key, Held] = {}

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, key: Key) -> bool:
        return key in self._held

    def load(self, refusals: Iterable[Refusal]) -> None:
        """What the rejects table holds, received by a previous process: their arrival
        order (which orders opaque resourceVersions) is renumbered to sit after what
        was loaded and before what this process receives."""
        self._held = {(r.resource, r.uid): Held(_renumbered(r.payload)) for r in refusals}

    def no_news(self, obs: Observed[Any]) -> bool:
        """An observation at the very version that was refused adds nothing."""
        held = self._held.get(obs.key)
        return held is not None and any(
            isinstance(p, Observed) and p.version.rv == obs.version.rv for p in held.payload
        )

    def with_held(self, inputs: Sequence[Input]) -> list[list[Input]]:
        """The inputs grouped by object (in order), each object's merged with what is
        held for it: one observation at most, and the first list that missed it."""
        groups: dict[Key, list[Input]] = {}
        for item in inputs:
            groups.setdefault(item.key, []).append(item)
        for key, items in groups.items():
            held = self._held.get(key)
            groups[key] = combined([*(held.payload if held else ()), *items])
        return list(groups.values())

    def resolved_by(self, inputs: Iterable[Input]) -> tuple[Key, ...]:
        """Held objects that these inputs write (when they commit)."""
        return tuple(dict.fromkeys(i.key for i in inputs if i.key in self._held))

    def refused(self, group: Sequence[Input]) -> None:
        """One object's inputs (with what was held) were refused: hold them."""
        self._held[group[0].key] = Held(tuple(group))

    def refused_without_payload(self, key: Key) -> None:
        self._held.setdefault(key, Held(()))

    def committed(self, keys: Iterable[Key]) -> None:
        for key in keys:
            self._held.pop(key, None)

    def replayable(self) -> list[Input]:
        """Everything held that can be written again, oldest first."""
        return [p for held in self._held.values() for p in held.payload]

    def without_payload(self) -> list[Key]:
        return [key for key, held in self._held.items() if not held.payload]


def combined(items: Sequence[Input]) -> list[Input]:
    """One object's inputs as at most one observation (all merged) and one absence
    (the first)."""
    observed: Observed[Any] | None = None
    vanished = None
    for item in items:
        if isinstance(item, Observed):
            observed = item if observed is None else merged(observed, item)
        elif vanished is None:
            vanished = item
    return [i for i in (observed, vanished) if i is not None]


def _seq_of(item: Input) -> int:
    return item.version.seq if isinstance(item, Observed) else item.listed.seq


def _renumbered(items: Sequence[Input]) -> tuple[Input, ...]:
    ordered = sorted(items, key=_seq_of)
    renumbered: list[Input] = []
    for seq, item in enumerate(ordered, start=1):
        if isinstance(item, Observed):
            renumbered.append(replace(item, version=replace(item.version, seq=seq)))
        else:
            renumbered.append(replace(item, listed=replace(item.listed, seq=seq)))
    return tuple(renumbered)
