"""What the diff compares against, kept in memory and updated in place after commit.

`SyncState` mirrors the rows that are still live in the database (active runner
sets, runners not deleted), the EphemeralRunnerSets (only needed for
`desired_runners`, never stored), each pool's live-runner tally (kept incrementally,
so a batch costs what it changed), and a bounded memory of recently deleted objects
(tombstones; the database keeps them all). The diff only reads it; `apply_delta`
adopts a committed ChangeSet's delta.
"""

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from snapshotter.diff.rows import RunnerCounts, RunnerSetRow, RunnerStateRow, Tally
from snapshotter.model.records import (
    EPHEMERAL_RUNNER_SETS,
    RUNNER_SETS,
    RUNNERS,
    EphemeralRunnerSetRecord,
    SetKey,
)
from snapshotter.model.versions import Version

V = TypeVar("V")
Key = tuple[str, str]  # (resource plural, uid)
Gone = RunnerStateRow | RunnerSetRow | Version
TOMBSTONES = 50_000
_RESOURCES = (RUNNERS, RUNNER_SETS)


class Tombstones:
    """Recently deleted objects by key, the oldest forgotten first past `limit`;
    the database keeps every one (deleted rows are never removed)."""

    def __init__(self, limit: int = TOMBSTONES) -> None:
        self.limit = limit
        self._items: OrderedDict[Key, Gone] = OrderedDict()
        self._seqs: dict[str, int] = {}  # uid -> arrival order of its last observation

    def get(self, key: Key) -> Gone | None:
        return self._items.get(key)

    def __contains__(self, key: Key) -> bool:
        return key in self._items

    def put(self, key: Key, value: Gone) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.limit:
            (_, uid), _ = self._items.popitem(last=False)
            self._seqs.pop(uid, None)

    def note_seq(self, uid: str, seq: int) -> None:
        """When the last observation of a deleted object arrived (non-integer RVs):
        an observation received before it, handed over later by a list taken
        earlier, is older although its RV differs."""
        if any((resource, uid) in self._items for resource in _RESOURCES):
            self._seqs[uid] = seq

    def seq(self, uid: str) -> int:
        return self._seqs.get(uid, 0)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(slots=True)
class SyncState:
    runner_sets: dict[str, RunnerSetRow] = field(default_factory=dict)
    runners: dict[str, RunnerStateRow] = field(default_factory=dict)
    ephemeral_runner_sets: dict[str, EphemeralRunnerSetRecord] = field(default_factory=dict)
    tallies: dict[str, Tally] = field(default_factory=dict)  # pool uid -> live runners
    written: dict[str, RunnerCounts] = field(default_factory=dict)  # counts in the pool row
    histories: dict[str, RunnerCounts] = field(default_factory=dict)  # in its last history row
    history_at: dict[str, datetime] = field(default_factory=dict)  # pool uid -> last history
    active_by_key: dict[SetKey, str] = field(default_factory=dict)
    live_names: dict[tuple[str, str], str] = field(default_factory=dict)  # (ns, name) -> uid
    seqs: dict[str, int] = field(default_factory=dict)  # arrival order, non-integer RVs only
    gone: Tombstones = field(default_factory=Tombstones)

    @classmethod
    def loaded(
        cls,
        runner_sets: Iterable[RunnerSetRow],
        runners: Iterable[RunnerStateRow],
        histories: Mapping[str, RunnerCounts] | None = None,
    ) -> "SyncState":
        """The state as persisted: live rows, their tallies, the counts written in
        the pool rows and in each pool's last history row."""
        state = cls()
        delta = StateDelta(
            runner_sets=MapDelta(put={r.uid: r for r in runner_sets}),
            runners=MapDelta(put={r.uid: r for r in runners}),
        )
        apply_delta(state, delta)
        state.written = {uid: row.counts for uid, row in state.runner_sets.items()}
        state.histories = dict(histories if histories is not None else state.written)
        return state


def tally_of(row: RunnerStateRow) -> Tally:
    """A runner's contribution to its pool's counts. ARC counts a runner with no phase
    yet as pending, like the EphemeralRunnerSet controller does."""
    if row.runner_set_uid is None or not row.is_live:
        return Tally()
    return Tally(
        current=1,
        pending=int(row.phase in (None, "Pending")),
        running=int(row.phase == "Running"),
        failed=int(row.phase == "Failed"),
        busy=int(row.has_job),
    )


@dataclass(frozen=True, slots=True)
class MapDelta(Generic[V]):
    """Entries to put into one map of the state, and entries that left it (deleted)."""

    put: Mapping[str, V] = field(default_factory=dict)
    gone: Mapping[str, V] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StateDelta:
    runner_sets: MapDelta[RunnerSetRow] = field(default_factory=MapDelta)
    runners: MapDelta[RunnerStateRow] = field(default_factory=MapDelta)
    ephemeral_runner_sets: MapDelta[EphemeralRunnerSetRecord] = field(default_factory=MapDelta)
    written: Mapping[str, RunnerCounts] = field(default_factory=dict)
    histories: Mapping[str, RunnerCounts] = field(default_factory=dict)
    history_at: Mapping[str, datetime] = field(default_factory=dict)
    seqs: Mapping[str, int] = field(default_factory=dict)


def _adopt_runner_sets(state: SyncState, delta: MapDelta[RunnerSetRow]) -> None:
    for uid, row in delta.gone.items():
        old = state.runner_sets.pop(uid, None)
        key = SetKey(old.namespace, old.name) if old is not None else None
        if key is not None and state.active_by_key.get(key) == uid:
            del state.active_by_key[key]
        state.gone.put((RUNNER_SETS, uid), row)
    for uid, row in delta.put.items():
        state.runner_sets[uid] = row
        state.active_by_key[SetKey(row.namespace, row.name)] = uid


def _adopt_runners(state: SyncState, delta: MapDelta[RunnerStateRow]) -> None:
    changes: list[tuple[RunnerStateRow | None, RunnerStateRow | None]] = []
    for uid, row in delta.gone.items():
        changes.append((state.runners.pop(uid, None), None))
        state.gone.put((RUNNERS, uid), row)
        if state.live_names.get((row.namespace, row.name)) == uid:
            del state.live_names[(row.namespace, row.name)]
    for uid, row in delta.put.items():
        changes.append((state.runners.get(uid), row))
        state.runners[uid] = row
        state.live_names[(row.namespace, row.name)] = uid
    for old, new in changes:
        if old is not None:
            _count(state, old, -tally_of(old))
        if new is not None:
            _count(state, new, tally_of(new))


def _count(state: SyncState, row: RunnerStateRow, change: Tally) -> None:
    if row.runner_set_uid is not None and change != Tally():
        pool = row.runner_set_uid
        state.tallies[pool] = state.tallies.get(pool, Tally()) + change


def apply_delta(state: SyncState, delta: StateDelta) -> None:
    """Adopt what a committed transaction wrote (in place)."""
    _adopt_runner_sets(state, delta.runner_sets)
    _adopt_runners(state, delta.runners)
    for uid, record in delta.ephemeral_runner_sets.gone.items():
        state.ephemeral_runner_sets.pop(uid, None)
        state.gone.put((EPHEMERAL_RUNNER_SETS, uid), Version(record.resource_version))
    state.ephemeral_runner_sets.update(delta.ephemeral_runner_sets.put)
    state.written.update(delta.written)
    state.histories.update(delta.histories)
    state.history_at.update(delta.history_at)
    for uid, seq in delta.seqs.items():
        # an older observation ignored in this batch must not move the arrival order
        # of what is stored back: the next one would then look newer than it is
        state.seqs[uid] = max(seq, state.seqs.get(uid, 0))
    for uid in (*delta.runners.gone, *delta.runner_sets.gone):
        last = state.seqs.pop(uid, None)
        if last:
            state.gone.note_seq(uid, last)
