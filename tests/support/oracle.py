"""What the tables must say, written from SPEC.md, for the interleaving test.

The oracle is told what the daemon received (watch events, list items, complete
lists, watch progress) and how far the daemon's writer got; it computes, without
the diff or the store, the rows that SPEC §1, §3, §4 and §7 require:

- the pending queue is keyed by object (SPEC §7, client-go's DeltaFIFO): an object
  already pending takes a new observation into its place in line, and a complete
  list waits behind what was queued before it; the oracle keeps the same order;
- an object's pending observations are applied together: the newest state by
  resourceVersion (§4.4; arrival order where an RV is not an integer), facts that
  only fill what is unknown (the job and when it was first received, the deletion
  timestamp, or when the DELETED event came if the object never showed one);
- a runner finishes once (§3.3), at the first moment, in the order things were
  received, at which a rule holds: a terminal phase; a deletion or a disappearance
  while it had a job (rule order breaks a tie); completed_at is what that rule
  says, and a job is never assigned after its runner finished: of the two times,
  the one received later gives way;
- a list decides what vanished by its own resourceVersion: what was observed after
  it began stays; while the watch is live a poll list only suspects an absence,
  decided once the watch has delivered past the list, or by the next poll;
- a name taken by a new uid means the runner that had it is gone (names are unique
  among live objects);
- a runner belongs to the pool of its name that existed when it was created (§1);
- a finished runner that ran a job gets one run row per matching config (one per
  runner under Lens's own key), with the facts it had then (§3.4);
- an object the database refuses is held with everything received about it and
  written when it is retried and accepted (§4.8); a crash forgets what was received
  and not applied, and what lived in memory only.

Times are the receipt times the test hands over; the oracle never reads a clock.
"""

import copy
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from tests.support.cluster_model import POOLS, RUNNERS, TERMINAL

Key = tuple[str, str]  # (resource, uid)
# When a fact applied before the observations being applied was received: before
# all of them.
EARLIER = datetime.min.replace(tzinfo=UTC)
TRACKED = (
    "phase",
    "job_id",
    "job_assigned_at",
    "deletion_timestamp",
    "is_deleted",
    "completion",
    "pool_name",
    "attached",
)


def integer_rv(rv: str) -> int | None:
    """SPEC §4.4: a positive decimal integer without leading zeros, else None."""
    if rv and rv[0] != "0" and rv.isascii() and rv.isdigit():
        return int(rv)
    return None


def newer(rv: str, seq: float, than_rv: str, than_seq: float) -> bool:
    """Whether an observation (rv, arrival order) is newer than another (§4.4)."""
    mine, theirs = integer_rv(rv), integer_rv(than_rv)
    if mine is not None and theirs is not None:
        return mine > theirs
    return rv != than_rv and seq > than_seq


def not_after(rv: str, seq: float, list_rv: str, list_seq: float) -> bool:
    """Whether an observation predates a complete list (its absence then means gone)."""
    mine, theirs = integer_rv(rv), integer_rv(list_rv)
    if mine is not None and theirs is not None:
        return mine <= theirs
    return seq < list_seq


def _describe(signal: "Signal") -> str:
    if signal.vanished:
        return f"absent from list rv={signal.rv} seq={signal.seq} at={signal.at:%H:%M:%S.%f}"
    kind = "DELETED" if signal.deleted else "seen"
    return (
        f"{kind} rv={signal.rv} seq={signal.seq} at={signal.at:%H:%M:%S.%f} "
        f"phase={signal.phase} job={signal.job_id} deleting={signal.deletion_timestamp}"
    )


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class Signal:
    """One observation the daemon received, or an absence it decided."""

    resource: str
    uid: str
    obj: dict[str, Any] | None  # None: gone from a complete list
    at: datetime  # receipt time (a list's: when it began)
    seq: float  # arrival order (a list's items share the list's)
    moment: int  # the order in which the daemon got them (ties of receipt time)
    deleted: bool = False  # a DELETED event
    rv_override: str | None = None  # a vanishing list's resourceVersion

    @property
    def rv(self) -> str:
        if self.rv_override is not None:
            return self.rv_override
        assert self.obj is not None
        rv: str = self.obj["metadata"]["resourceVersion"]
        return rv

    @property
    def status(self) -> dict[str, Any]:
        return (self.obj or {}).get("status") or {}

    @property
    def job_id(self) -> str | None:
        job: str | None = self.status.get("jobId")
        return job

    @property
    def phase(self) -> str | None:
        phase: str | None = self.status.get("phase")
        return phase

    @property
    def deletion_timestamp(self) -> datetime | None:
        return parse_time((self.obj or {}).get("metadata", {}).get("deletionTimestamp"))

    @property
    def vanished(self) -> bool:
        return self.obj is None


@dataclass(slots=True)
class Stream:
    """One resource's part of a complete list."""

    resource: str
    rv: str
    seen: frozenset[str]


@dataclass(slots=True)
class Marker:
    """A complete list, waiting behind what was queued before it."""

    streams: list[Stream]
    seq: int  # arrival order when the list began
    at: datetime  # when the list began
    from_watch: bool
    handle: Any  # the engine's marker (its `done` says whether it was applied)
    position: int = 0


@dataclass(slots=True)
class Pending:
    position: int
    signals: list[Signal]


@dataclass(slots=True)
class Runner:
    """One runner state row as SPEC wants it."""

    uid: str
    name: str
    rv: str
    seq: float
    phase: str | None
    pool_name: str | None
    created: datetime
    attached: str | None = None  # the pool uid its row points to
    job_id: str | None = None
    job_assigned_at: datetime | None = None
    deletion_timestamp: datetime | None = None
    is_deleted: bool = False
    vanished_at: datetime | None = None  # gone from a list (or its name taken) then
    completion: tuple[str, datetime] | None = None  # (source, completed_at)
    runs: dict[int, "Run"] = field(default_factory=dict)  # config id -> run row

    @property
    def has_job(self) -> bool:
        return self.job_id is not None

    @property
    def live(self) -> bool:
        """Counts toward its pool: exists and is not being deleted."""
        return not self.is_deleted and self.deletion_timestamp is None

    def tracked(self) -> tuple[Any, ...]:
        return tuple(getattr(self, k) for k in TRACKED)


@dataclass(frozen=True, slots=True)
class Run:
    """A run row's facts, as they were when it was written."""

    config_id: int
    job_id: str | None
    job_assigned_at: datetime | None
    completed_at: datetime
    completion_source: str
    pool_name: str | None
    pool_uid: str | None  # at write time (rows of later pools are attached later)


@dataclass(slots=True)
class Pool:
    uid: str
    name: str
    rv: str
    seq: float
    created: datetime
    active: bool = True


@dataclass(frozen=True, slots=True)
class Counts:
    current: int = 0
    pending: int = 0
    running: int = 0
    failed: int = 0
    busy: int = 0


@dataclass(frozen=True, slots=True)
class Ending:
    """A rule of §3.3 that holds: since when (receipt time), and its completed_at."""

    source: str
    since: datetime
    at: datetime
    rank: int  # the rule's order, for rules that hold from the same time


@dataclass(frozen=True, slots=True)
class Known:
    """What a row knew before the observations being applied."""

    job: bool
    deletion: bool
    vanish: bool

    def __init__(self, runner: "Runner") -> None:
        object.__setattr__(self, "job", runner.has_job)
        object.__setattr__(self, "deletion", runner.deletion_timestamp is not None)
        object.__setattr__(self, "vanish", runner.vanished_at is not None)


@dataclass
class Coverage:
    """How often the scenario reached the situations the rules are about."""

    counts: dict[str, int] = field(default_factory=dict)

    def hit(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1


Poisoned = Callable[[str, str], bool]  # (table, name) -> the database refuses the row


class Oracle:
    def __init__(
        self,
        *,
        lens: bool,
        configs: Mapping[int, str | None],
        cap: int,
        poisoned: Poisoned,
        coverage: Coverage,
    ) -> None:
        """`configs`: config id -> the pool name it is bound to (None: every pool)."""
        self.lens = lens
        self.configs = dict(configs)
        self.cap = cap
        self.poisoned = poisoned
        self.cover = coverage
        self.runners: dict[str, Runner] = {}
        self.pools: dict[str, Pool] = {}
        self.ers: dict[str, tuple[str, float]] = {}  # EphemeralRunnerSet uid -> (rv, seq)
        self.rejected: dict[Key, list[Signal]] = {}
        self._pending: dict[Key, Pending] = {}
        self._markers: list[Marker] = []
        self._progress: dict[str, tuple[int, str]] = {}  # stream -> (position, rv)
        self._applied_progress: dict[str, str] = {}
        self._suspects: dict[Key, tuple[Marker, Stream]] = {}
        self._live_watches: set[str] = set()
        self._positions = itertools.count()
        self._moments = itertools.count()
        self.trace: dict[str, list[str]] = {}  # uid -> what happened, for failure messages

    # -- what the daemon receives ------------------------------------------------------

    def next_moment(self) -> int:
        return next(self._moments)

    def stored_rv(self, resource: str, uid: str) -> str | None:
        """The resourceVersion the daemon holds for a live object: a list item at it
        only proves presence and is not queued."""
        if resource == RUNNERS:
            runner = self.runners.get(uid)
            return runner.rv if runner and not runner.is_deleted else None
        if resource == POOLS:
            pool = self.pools.get(uid)
            return pool.rv if pool and pool.active else None
        held = self.ers.get(uid)
        return held[0] if held else None

    def note(self, uid: str, what: str) -> None:
        self.trace.setdefault(uid, []).append(what)

    def receive(self, signal: Signal) -> bool:
        """Queue one observation; False when the queue is full (it is refused)."""
        key = (signal.resource, signal.uid)
        self.note(signal.uid, f"received {_describe(signal)}")
        pending = self._pending.get(key)
        if pending is not None:
            pending.signals.append(signal)
            self.cover.hit("observations of one object merged")
            return True
        if len(self._pending) >= self.cap:
            self.cover.hit("queue full")
            return False
        self._pending[key] = Pending(next(self._positions), [signal])
        return True

    def progress(self, stream: str, rv: str) -> None:
        self._progress[stream] = (next(self._positions), rv)

    def watch_live(self, stream: str, live: bool) -> None:
        if live:
            self._live_watches.add(stream)
        else:
            self._live_watches.discard(stream)

    def list_handed(self, marker: Marker) -> None:
        marker.position = next(self._positions)
        self._markers.append(marker)

    @property
    def pending_objects(self) -> int:
        return len(self._pending)

    def pending_keys(self) -> set[Key]:
        return set(self._pending)

    def suspected(self, resource: str) -> set[str]:
        """Objects a poll list missed while their watch was behind (to steer tests)."""
        return {uid for kind, uid in self._suspects if kind == resource}

    def crash(self) -> None:
        """kill -9: what was not applied is forgotten, and what lived in memory."""
        for uid in self.trace:
            self.note(uid, "crash")
        if self._pending or self._markers:
            self.cover.hit("crash with work pending")
        self._pending.clear()
        self._markers.clear()
        self._progress.clear()
        self._applied_progress.clear()
        self._suspects.clear()
        self._live_watches.clear()
        self.ers.clear()
        for runner in self.runners.values():
            runner.seq = 0  # loaded from the database: no arrival order
        for pool in self.pools.values():
            pool.seq = 0
        for key, held in self.rejected.items():
            # kept by the rejects table: after what is loaded (0), in the order they
            # came, before what the next process receives (from 3, the queue's first)
            ordered = sorted(held, key=lambda s: s.seq)
            step = 1 / (len(ordered) + 1)
            self.rejected[key] = [
                replace(s, seq=1 + n * step) for n, s in enumerate(ordered, start=1)
            ]

    def standby_forgets(self, received_before: Callable[[Signal], bool]) -> None:
        """A standby drops objects observed only before a cutoff, and its lists."""
        for key, pending in list(self._pending.items()):
            if received_before(pending.signals[-1]):
                del self._pending[key]
        self._markers.clear()
        self._progress.clear()

    # -- what the writer applied -------------------------------------------------------

    def applied(self, still_pending: set[Key], marker_done: Callable[[Any], bool]) -> None:
        """The writer applied everything in queue order up to the first object or
        list it still holds: apply the same."""
        items: list[tuple[int, str, Any]] = [
            (p.position, "object", k) for k, p in self._pending.items()
        ]
        items += [(m.position, "marker", m) for m in self._markers]
        items += [(pos, "progress", s) for s, (pos, _) in self._progress.items()]
        for _, kind, item in sorted(items, key=lambda i: i[0]):
            if kind == "object":
                if item in still_pending:
                    break
                self._apply(item, self._pending.pop(item).signals)
            elif kind == "marker":
                if not marker_done(item.handle):
                    break
                self._markers.remove(item)
                self._apply_marker(item)
            else:
                _, rv = self._progress.pop(item)
                self._applied_progress[item] = rv
            self._decide_suspects()
        leftover = sorted(k for k in self._pending if k not in still_pending)
        assert not leftover, f"the writer applied {leftover} out of queue order"

    def _apply(self, key: Key, signals: list[Signal]) -> None:
        self.note(key[1], f"applied {[_describe(s) for s in signals]}")
        if self._no_news(key, signals):
            self.cover.hit("refused version seen again, left to the retry")
            return
        held = self.rejected.pop(key, [])
        if held:
            self.cover.hit("rejected object written again with news")
        signals = sorted([*held, *signals], key=lambda s: s.moment)
        resource, uid = key
        if resource == RUNNERS:
            self._apply_runner(uid, signals)
        elif resource == POOLS:
            self._apply_pool(uid, signals)
        else:
            self._apply_pool_set(uid, signals)

    def _no_news(self, key: Key, signals: list[Signal]) -> bool:
        """An object seen again at the very version the database refused brings
        nothing new: it waits for the retry."""
        held = {s.rv for s in self.rejected.get(key, []) if not s.vanished}
        observed = [s for s in signals if not s.vanished]
        if not held or not observed:
            return False
        newest = observed[0]
        for signal in observed[1:]:
            if newer(signal.rv, signal.seq, newest.rv, newest.seq):
                newest = signal
        return newest.rv in held

    def _reject(self, key: Key, signals: list[Signal]) -> None:
        self.note(key[1], "refused by the database: held")
        self.rejected.setdefault(key, []).extend(signals)
        self.cover.hit(f"{key[0]} rejected")

    # -- EphemeralRunnerSets (held in memory only) ---------------------------------------

    def _apply_pool_set(self, uid: str, signals: list[Signal]) -> None:
        """Only their desired count matters, and they live in memory only."""
        if any(s.deleted for s in signals):
            self.ers.pop(uid, None)
            return
        held = self.ers.get(uid)
        for signal in signals:
            if signal.vanished:
                if held is not None and not_after(*held, signal.rv, signal.seq):
                    held = None
            elif held is None or newer(signal.rv, signal.seq, *held):
                held = (signal.rv, signal.seq)
        if held is None:
            self.ers.pop(uid, None)
        else:
            self.ers[uid] = held

    # -- pools ---------------------------------------------------------------------------

    def _apply_pool(self, uid: str, signals: list[Signal]) -> None:
        before = self.pools.get(uid)
        pool = copy.deepcopy(before) if before else self._new_pool(uid, signals)
        if pool is None:
            return  # the absence of a pool never stored says nothing
        for signal in signals:
            if not signal.vanished and newer(signal.rv, signal.seq, pool.rv, pool.seq):
                pool.rv, pool.seq = signal.rv, signal.seq
        if any(s.deleted or s.deletion_timestamp for s in signals):
            pool.active = False
        vanish = next((s for s in signals if s.vanished), None)
        if pool.active and vanish and not_after(pool.rv, pool.seq, vanish.rv, vanish.seq):
            pool.active = False
            pool.rv, pool.seq = vanish.rv, vanish.seq
            self.cover.hit("pool vanished from a list")
        written = before is None or before.active != pool.active
        if written and self.poisoned("github_runner_sets", pool.name):
            self._reject((POOLS, uid), signals)
            return
        self.cover.hit("pool stored" if before is None else "pool observed again")
        if before is not None and before.active and not pool.active:
            self.cover.hit("pool deleted")
        self.pools[uid] = pool
        if pool.active:
            self._attach_orphans(pool)

    @staticmethod
    def _new_pool(uid: str, signals: list[Signal]) -> Pool | None:
        first = next((s for s in signals if s.obj is not None), None)
        if first is None or first.obj is None:
            return None
        created = parse_time(first.obj["metadata"]["creationTimestamp"])
        assert created is not None
        return Pool(uid, first.obj["metadata"]["name"], first.rv, first.seq, created)

    def pool_for(self, name: str | None) -> Pool | None:
        """The stored pool a runner's labels name (pool names are unique here)."""
        return next((p for p in self.pools.values() if p.name == name), None)

    def _attach_orphans(self, pool: Pool) -> None:
        for runner in self.runners.values():
            if runner.attached is None and runner.pool_name == pool.name and not runner.is_deleted:
                runner.attached = pool.uid
                self.cover.hit("runner attached to a pool that came after it")

    # -- runners -------------------------------------------------------------------------

    def _apply_runner(self, uid: str, signals: list[Signal]) -> None:
        before = self.runners.get(uid)
        runner = copy.deepcopy(before) if before else self._new_runner(uid, signals)
        if runner is None:
            return  # only an absence of a runner never stored: nothing to say
        self._fold(runner, signals)
        holders = [
            r
            for r in self.runners.values()
            if r.uid != uid and r.name == runner.name and not r.is_deleted
        ]
        if any(r.created > runner.created for r in holders) and not runner.is_deleted:
            self.note(uid, "name held by a newer runner")
            self._vanish(runner, at=signals[0].at)
        freed = [r for r in holders if r.created < runner.created]
        wrote_state = before is None or before.tracked() != runner.tracked()
        new_runs = runner.runs.keys() - (before.runs.keys() if before else set())
        if (
            (wrote_state and self.poisoned("github_ephemeral_runner_states", runner.name))
            or (new_runs and self.poisoned("github_workflow_runs", runner.name))
            or any(self._end_refused(other, at=signals[0].at) for other in freed)
        ):
            # the end of a runner whose name this one takes is written with it: a
            # refused end holds this runner's observation too (retried together)
            self._reject((RUNNERS, uid), signals)
            return
        self.runners[uid] = runner
        for other in freed:
            self.note(other.uid, f"name taken by {uid}")
            self._vanish(other, at=signals[0].at)

    def _new_runner(self, uid: str, signals: list[Signal]) -> Runner | None:
        observed = [s for s in signals if not s.vanished]
        if not observed:
            return None
        first = max(observed, key=lambda s: (integer_rv(s.rv) or 0, s.seq))
        assert first.obj is not None
        meta = first.obj["metadata"]
        created = parse_time(meta["creationTimestamp"])
        assert created is not None
        return Runner(
            uid=uid,
            name=meta["name"],
            rv="",
            seq=-1,
            phase=None,
            pool_name=meta["labels"]["actions.github.com/scale-set-name"],
            created=created,
        )

    def _fold(self, runner: Runner, signals: list[Signal]) -> None:
        """Apply the signals to the row (a copy; the caller keeps it if it commits)."""
        known = Known(runner)
        self._newest_state(runner, signals)
        pool = self.pool_for(runner.pool_name)
        if runner.attached is None and pool is not None and pool.active:
            runner.attached = pool.uid
        job_at = self._fill_job(runner, signals)
        deletion_at = self._fill_deletion(runner, signals)
        vanish = next((s for s in signals if s.vanished), None)
        if vanish is not None and not runner.is_deleted:
            if not_after(runner.rv, runner.seq, vanish.rv, vanish.seq):
                self._gone_from_list(runner, vanish)
            else:
                self.cover.hit("observed after the list began")
        endings = []
        terminal = min((s.at for s in signals if s.phase in TERMINAL), default=None)
        if terminal is not None:
            endings.append(Ending("phase", terminal, terminal, 0))
        deleted_at = min((s.at for s in signals if s.deleted), default=None)
        at = runner.deletion_timestamp or deleted_at
        if at is not None:
            since = EARLIER if known.deletion or deletion_at is None else deletion_at
            endings.append(Ending("deleted", since, at, 1))
        if runner.vanished_at is not None:
            since = EARLIER if known.vanish else runner.vanished_at
            endings.append(Ending("vanished", since, runner.vanished_at, 2))
        self._complete(runner, endings, EARLIER if known.job else job_at)

    def _newest_state(self, runner: Runner, signals: list[Signal]) -> None:
        """The newest observation (by resourceVersion) sets the current state."""
        for signal in signals:
            if signal.vanished:
                continue
            if runner.seq < 0 or newer(signal.rv, signal.seq, runner.rv, runner.seq):
                runner.rv, runner.seq, runner.phase = signal.rv, signal.seq, signal.phase
            elif runner.is_deleted:
                self.cover.hit("old observation of a deleted runner")
            else:
                self.cover.hit("older observation ignored")

    def _fill_job(self, runner: Runner, signals: list[Signal]) -> datetime | None:
        """The job fields and when they were first received (if not known yet)."""
        jobs = [s for s in signals if s.job_id]
        if runner.has_job or not jobs:
            return None
        first = min(jobs, key=lambda s: (s.at, s.moment))
        runner.job_id, runner.job_assigned_at = first.job_id, first.at
        if runner.deletion_timestamp is not None or runner.is_deleted:
            self.cover.hit("job learned after the deletion")
        return first.at

    def _fill_deletion(self, runner: Runner, signals: list[Signal]) -> datetime | None:
        """The deletion facts; returns when a deletion was first received here."""
        deleting = [s for s in signals if s.deletion_timestamp is not None]
        deleted = [s for s in signals if s.deleted]
        if runner.deletion_timestamp is None:
            if deleting:
                runner.deletion_timestamp = min(deleting, key=lambda s: s.at).deletion_timestamp
            elif deleted and not runner.is_deleted:
                runner.deletion_timestamp = min(s.at for s in deleted)
                self.cover.hit("deleted without a deletionTimestamp")
        if deleted:
            runner.is_deleted = True
        return min((s.at for s in (*deleting, *deleted)), default=None)

    def _gone_from_list(self, runner: Runner, vanish: Signal) -> None:
        runner.is_deleted = True
        runner.vanished_at = vanish.at
        runner.rv, runner.seq = vanish.rv, vanish.seq  # the list's RV: a tombstone
        self.cover.hit("vanished from a list")

    def _complete(self, runner: Runner, endings: list[Ending], job_at: datetime | None) -> None:
        """The first rule of §3.3 to hold finishes the runner (ties: rule order)."""
        if runner.completion is None:
            candidates: list[tuple[datetime, int, Ending]] = []
            for e in endings:
                if e.source == "phase":
                    candidates.append((e.since, e.rank, e))
                elif job_at is not None:
                    candidates.append((max(e.since, job_at), e.rank, e))
            if not candidates:
                return
            held_since, _, ending = min(candidates, key=lambda c: (c[0], c[1]))
            completed_at = ending.at
            assigned = runner.job_assigned_at
            if assigned is not None and assigned > completed_at:
                if job_at is not None and job_at < held_since:
                    completed_at = assigned  # the job was known first: the end gives way
                    self.cover.hit("end moved up to the job")
                else:
                    runner.job_assigned_at = completed_at  # learned with or after the end
                    self.cover.hit("job time moved down to the end")
            runner.completion = (ending.source, completed_at)
            self.cover.hit(f"completed by {ending.source}")
        elif runner.job_assigned_at is not None and runner.job_assigned_at > runner.completion[1]:
            runner.job_assigned_at = runner.completion[1]  # a job learned after the end
            self.cover.hit("job learned after the end dated back to it")
        if runner.has_job or runner.phase == "Succeeded":
            self._write_runs(runner)

    def _write_runs(self, runner: Runner) -> None:
        if runner.runs or runner.completion is None:
            return
        source, completed_at = runner.completion
        for config_id in self.matching_configs(runner):
            runner.runs[config_id] = Run(
                config_id=config_id,
                job_id=runner.job_id,
                job_assigned_at=runner.job_assigned_at,
                completed_at=completed_at,
                completion_source=source,
                pool_name=runner.pool_name,
                pool_uid=runner.attached,
            )
        if not runner.has_job:
            self.cover.hit("run of a runner without job fields")
        self.cover.hit("run rows written")

    def _end_refused(self, runner: Runner, *, at: datetime) -> bool:
        """Whether the database refuses what recording `runner` gone writes: its
        state, or a run row for its job."""
        ended, counts = copy.deepcopy(runner), dict(self.cover.counts)
        self._vanish(ended, at=at)
        self.cover.counts = counts  # only a look ahead: nothing was reached
        return self.poisoned("github_ephemeral_runner_states", runner.name) or bool(
            ended.runs.keys() - runner.runs.keys()
            and self.poisoned("github_workflow_runs", runner.name)
        )

    def _vanish(self, runner: Runner, *, at: datetime) -> None:
        """Another uid holds its name: the runner is gone (and recorded first)."""
        runner.is_deleted = True
        runner.vanished_at = at
        self._complete(runner, [Ending("vanished", at, at, 2)], EARLIER if runner.has_job else None)
        self.cover.hit("name reused by a new uid")

    def matching_configs(self, runner: Runner) -> list[int]:
        return [c for c, pool in self.configs.items() if pool is None or pool == runner.pool_name]

    # -- complete lists ------------------------------------------------------------------

    def _apply_marker(self, marker: Marker) -> None:
        for stream in marker.streams:
            ahead = self._watch_ahead(stream.resource, stream.rv)
            defer = not marker.from_watch and stream.resource in self._live_watches and not ahead
            for uid in stream.seen:
                self._suspects.pop((stream.resource, uid), None)
            for uid, rv, seq in self._live_rows(stream.resource):
                if uid in stream.seen:
                    continue
                if not not_after(rv, seq, stream.rv, marker.seq):
                    self.cover.hit("observed after the list began")
                    continue
                key = (stream.resource, uid)
                if defer and key not in self._suspects:
                    self._suspects[key] = (marker, stream)
                    self.cover.hit("absence suspected while the watch is live")
                    self.cover.hit(f"{stream.resource} suspected")
                    continue
                first = self._suspects.pop(key, None)
                if first is not None:
                    self.cover.hit("suspect decided by the next list")
                # absent since the first list that missed it: SPEC 3.3 rule 3, the
                # time of that list
                at = first[0].at if first is not None else None
                self._absent(stream.resource, uid, marker, stream, at=at)

    def _live_rows(self, resource: str) -> list[tuple[str, str, float]]:
        if resource == RUNNERS:
            return [(r.uid, r.rv, r.seq) for r in self.runners.values() if not r.is_deleted]
        if resource == POOLS:
            return [(p.uid, p.rv, p.seq) for p in self.pools.values() if p.active]
        return [(u, rv, seq) for u, (rv, seq) in self.ers.items()]

    def _watch_ahead(self, stream: str, list_rv: str) -> bool:
        progress = integer_rv(self._applied_progress.get(stream, ""))
        listed = integer_rv(list_rv)
        return progress is not None and listed is not None and progress >= listed

    def _absent(
        self, resource: str, uid: str, marker: Marker, stream: Stream, *, at: Any = None
    ) -> None:
        signal = Signal(
            resource,
            uid,
            None,
            at if at is not None else marker.at,
            marker.seq,
            self.next_moment(),
            rv_override=stream.rv,
        )
        self._apply((resource, uid), [signal])

    def _decide_suspects(self) -> None:
        for key, (marker, stream) in list(self._suspects.items()):
            resource, uid = key
            rows = {u: (rv, seq) for u, rv, seq in self._live_rows(resource)}
            if uid not in rows or not not_after(*rows[uid], stream.rv, marker.seq):
                del self._suspects[key]
                self.cover.hit("suspect cleared by news")
                continue
            if self._watch_ahead(resource, stream.rv):
                del self._suspects[key]
                self.cover.hit("suspect decided by the watch")
                self._absent(resource, uid, marker, stream)

    # -- rejected objects ----------------------------------------------------------------

    def retry_rejected(self) -> None:
        """What the database refused is applied again (start-up, periodic, command)."""
        self.note("database", f"retry of {sorted(self.rejected)}")
        for key in sorted(self.rejected, key=lambda k: self.rejected[k][0].moment):
            signals = self.rejected.pop(key)
            self.cover.hit("rejected object retried")
            self._apply(key, signals)

    # -- what the tables must say --------------------------------------------------------

    def pool_counts(self, pool_uid: str) -> Counts:
        live = [r for r in self.runners.values() if r.attached == pool_uid and r.live]
        return Counts(
            current=len(live),
            pending=sum(r.phase in (None, "Pending") for r in live),
            running=sum(r.phase == "Running" for r in live),
            failed=sum(r.phase == "Failed" for r in live),
            busy=sum(r.has_job for r in live),
        )

    def runs(self) -> Iterable[tuple[Runner, Run]]:
        for runner in self.runners.values():
            for run in runner.runs.values():
                yield runner, run
