"""The single writer (SPEC §4.1).

Producers (the scheduled poller, the watchers) only read Kubernetes and hand their
observations here. The applier keeps an in-memory mirror of the persisted state,
diffs each observation against it, writes the ChangeSet in one transaction and only
then adopts it. Every call must come from one thread (the daemon runs it on a
single-worker executor); a failed transaction reloads the mirror from the database.

Ordering (SPEC §4.4): resourceVersions are opaque, so observations are ordered by
the applier's own position counter. Each object remembers the position at which its
last observation was applied and the position at which that observation began (a
list's start, an event's receipt); an observation that began before the one already
applied for an object is older news and is ignored for that object.
"""

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from snapshotter.clock import Clock, monotonic
from snapshotter.diff import compute, matching
from snapshotter.diff.changes import ChangeSet, Cursor
from snapshotter.diff.state import Namespaced, Observation, Observed, PersistedState
from snapshotter.errors import StoreError
from snapshotter.kube import resources
from snapshotter.kube.client import Listing
from snapshotter.kube.resources import Resource
from snapshotter.model import parse
from snapshotter.sync.observations import ParseReport, observe_listing, parse_one
from snapshotter.sync.ports import Store
from snapshotter.sync.stats import SyncStats

log = logging.getLogger(__name__)

R = TypeVar("R")
TOMBSTONE_SECONDS = 600.0
RawObject = parse.RawObject
CommitHook = Callable[[Sequence[RawObject], PersistedState], None]

_PARSERS: dict[str, Callable[[RawObject], parse.Parsed[Any]]] = {
    resources.AUTOSCALING_RUNNER_SETS.plural: parse.parse_runner_set,
    resources.EPHEMERAL_RUNNER_SETS.plural: parse.parse_ephemeral_runner_set,
    resources.EPHEMERAL_RUNNERS.plural: parse.parse_ephemeral_runner,
}


def stream_name(resource: Resource, namespace: str | None) -> str:
    """The cursor (and log) name of one list/watch scope."""
    return resource.plural if namespace is None else f"{resource.plural}/{namespace}"


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """A watch event as handed to the writer, with when (position, time) it arrived."""

    resource: Resource
    namespace: str | None
    type: str
    object: RawObject
    resource_version: str | None
    position: int
    received_at: float

    @property
    def stream(self) -> str:
        return stream_name(self.resource, self.namespace)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What one transaction did, for logs, metrics and the `--once` summary."""

    changes: ChangeSet
    written: Mapping[str, int]
    listed: Mapping[str, int] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)  # stream -> list resourceVersion
    skipped: int = 0
    seconds: float = 0.0

    @property
    def rows_written(self) -> int:
        return sum(self.written.values())


@dataclass(frozen=True, slots=True)
class _Stamp:
    applied: int  # position at which the last observation of the object was applied
    began: int  # position at which that observation began (list start, event receipt)
    at: float  # monotonic time, to forget tombstones


class Applier:
    def __init__(
        self,
        store: Store,
        *,
        cluster_name: str,
        clock: Clock,
        stats: SyncStats | None = None,
        on_commit: CommitHook | None = None,
    ) -> None:
        self.store = store
        self.cluster_name = cluster_name
        self.clock = clock
        self.stats = stats or SyncStats()
        self.on_commit = on_commit
        self.state = PersistedState()
        self.configs: tuple[matching.CompiledConfig, ...] = ()
        self.report = ParseReport()
        self._position = 0
        self._stamps: dict[str, _Stamp] = {}
        self._config_errors: set[str] = set()
        self._live_watches: set[str] = set()
        self._absent_once: set[str] = set()

    @property
    def position(self) -> int:
        """A marker taken before listing or on receiving an event."""
        return self._position

    def load(self) -> None:
        """(Re)load the persisted state; the ephemeral runner sets are not stored."""
        loaded = self.store.load_state()
        self.state = replace(loaded, ephemeral_runner_sets=self.state.ephemeral_runner_sets)

    def reload_configs(self) -> None:
        compiled = tuple(matching.compile_config(c) for c in self.store.load_configs())
        for config in compiled:
            if config.error and config.error not in self._config_errors:
                log.error("workflow config ignored: %s", config.error)
                self._config_errors.add(config.error)
        self.configs = compiled

    def set_watch_live(self, stream: str, live: bool) -> None:
        """A live watch delivers deletions itself: a poll list then only suspects absence."""
        if live:
            self._live_watches.add(stream)
        else:
            self._live_watches.discard(stream)

    # -- complete lists ----------------------------------------------------------

    def apply_listings(
        self, listings: Sequence[Listing], *, since: int, from_watch: bool = False
    ) -> ApplyResult:
        """Apply complete lists taken after `position` was `since`.

        Objects a list does not mention vanished unseen (completion rule 3), except
        that a poll list (`from_watch=False`) of a resource whose watch is live only
        declares them vanished when the next poll list misses them too: the live watch
        normally delivers their DELETED event, with their last state, first.
        """
        started = monotonic()
        self.reload_configs()
        skipped_before = self.report.skipped
        observation = self._observe_listings(listings, since=since, defer=not from_watch)
        cursors = [
            Cursor(stream_name(listing.resource, listing.namespace), listing.resource_version, True)
            for listing in listings
        ]
        changes, written = self._apply(observation, cursors, began={}, default_began=since)
        runners = [
            o for li in listings if li.resource == resources.EPHEMERAL_RUNNERS for o in li.items
        ]
        self._after_commit(runners)
        return ApplyResult(
            changes=changes,
            written=written,
            listed={stream_name(li.resource, li.namespace): len(li.items) for li in listings},
            versions={
                stream_name(li.resource, li.namespace): li.resource_version for li in listings
            },
            skipped=self.report.skipped - skipped_before,
            seconds=monotonic() - started,
        )

    def _observe_listings(
        self, listings: Sequence[Listing], *, since: int, defer: bool
    ) -> Observation:
        keep = frozenset(uid for uid, stamp in self._stamps.items() if stamp.applied > since)
        persisted = self._persisted_by_resource()
        observed: dict[str, Observed[Any]] = {}
        for resource in resources.ALL:
            mine = [li for li in listings if li.resource == resource]
            if not mine:
                continue
            rows = persisted[resource.plural]
            result = observe_listing(
                [item for li in mine for item in li.items],
                _PARSERS[resource.plural],
                kind=resource.kind,
                persisted_versions={uid: row.resource_version for uid, row in rows.items()},
                keep=keep,
                report=self.report,
            )
            scope = (
                None
                if any(li.namespace is None for li in mine)
                else frozenset(li.namespace for li in mine if li.namespace is not None)
            )
            result = replace(result, scope=scope)
            if defer and any(
                stream_name(resource, li.namespace) in self._live_watches for li in mine
            ):
                result = self._defer_absence(result, rows)
            observed[resource.plural] = result
        return Observation(
            runner_sets=observed.get(resources.AUTOSCALING_RUNNER_SETS.plural, Observed()),
            ephemeral_runner_sets=observed.get(resources.EPHEMERAL_RUNNER_SETS.plural, Observed()),
            runners=observed.get(resources.EPHEMERAL_RUNNERS.plural, Observed()),
        )

    def _defer_absence(self, observed: Observed[R], rows: Mapping[str, Namespaced]) -> Observed[R]:
        absent = set(observed.absent_from(rows))
        first_time = absent - self._absent_once
        # remembered until the next poll: then vanished (still absent) or cleared
        self._absent_once = (self._absent_once - set(rows)) | first_time
        return replace(observed, unchanged=observed.unchanged | first_time)

    # -- watch events ------------------------------------------------------------

    def apply_events(self, events: Sequence[ReceivedEvent]) -> ApplyResult:
        """Apply a batch of watch events in one transaction."""
        started = monotonic()
        skipped_before = self.report.skipped
        latest: dict[str, ReceivedEvent] = {}
        for event in events:
            uid = (event.object.get("metadata") or {}).get("uid")
            if isinstance(uid, str) and not self._is_older(uid, event.position):
                latest[uid] = event  # events of one object arrive in order: the last wins
        observation = self._observe_events(latest.values())
        cursors = {e.stream: e.resource_version for e in events if e.resource_version}
        changes, written = self._apply(
            observation,
            [Cursor(stream, rv, full_resync=False) for stream, rv in cursors.items()],
            began={uid: e.position for uid, e in latest.items()},
            default_began=min((e.position for e in events), default=self._position),
        )
        now = monotonic()
        for event in events:
            self.stats.latency(now - event.received_at)
        runners = [
            e.object
            for e in latest.values()
            if e.resource == resources.EPHEMERAL_RUNNERS and e.type != "DELETED"
        ]
        self._after_commit(runners)
        return ApplyResult(
            changes=changes,
            written=written,
            skipped=self.report.skipped - skipped_before,
            seconds=monotonic() - started,
        )

    def _is_older(self, uid: str, position: int) -> bool:
        stamp = self._stamps.get(uid)
        return stamp is not None and stamp.began > position

    def _observe_events(self, events: Iterable[ReceivedEvent]) -> Observation:
        changed: dict[str, dict[str, Any]] = {r.plural: {} for r in resources.ALL}
        deleted: dict[str, dict[str, Any]] = {r.plural: {} for r in resources.ALL}
        versions = self._persisted_by_resource()
        for event in events:
            plural = event.resource.plural
            ident = parse.identity_of(event.object)
            persisted = versions[plural].get(ident.uid) if ident else None
            if (
                event.type != "DELETED"
                and persisted
                and ident
                and (persisted.resource_version == ident.resource_version)
            ):
                continue  # this very version is already persisted
            record = parse_one(
                event.object, _PARSERS[plural], kind=event.resource.kind, report=self.report
            )
            if record is not None:
                target = deleted if event.type == "DELETED" else changed
                target[plural][record.identity.uid] = record

        def observed(resource: Resource) -> Observed[Any]:
            return Observed(changed=changed[resource.plural], deleted=deleted[resource.plural])

        return Observation(
            runner_sets=observed(resources.AUTOSCALING_RUNNER_SETS),
            ephemeral_runner_sets=observed(resources.EPHEMERAL_RUNNER_SETS),
            runners=observed(resources.EPHEMERAL_RUNNERS),
        )

    def _persisted_by_resource(self) -> dict[str, Mapping[str, Namespaced]]:
        return {
            resources.AUTOSCALING_RUNNER_SETS.plural: self.state.runner_sets,
            resources.EPHEMERAL_RUNNER_SETS.plural: self.state.ephemeral_runner_sets,
            resources.EPHEMERAL_RUNNERS.plural: self.state.runners,
        }

    # -- the transaction ---------------------------------------------------------

    def _apply(
        self,
        observation: Observation,
        cursors: Iterable[Cursor],
        *,
        began: Mapping[str, int],
        default_began: int,
    ) -> tuple[ChangeSet, dict[str, int]]:
        changes = compute.compute_changes(
            self.state,
            observation,
            context=compute.DiffContext(self.cluster_name, self.configs),
            now=self.clock(),
        )
        try:
            written = self.store.apply(changes, cursors)
        except StoreError:
            self._reload_after_failure()
            raise
        self.state = changes.delta.applied_to(self.state)
        self._stamp(changes, began, default_began)
        return changes, dict(written.rows)

    def _reload_after_failure(self) -> None:
        try:
            self.load()
        except StoreError as e:
            log.warning("reloading persisted state failed, keeping the mirror error=%s", e)

    def _stamp(self, changes: ChangeSet, began: Mapping[str, int], default_began: int) -> None:
        self._position += 1
        now = monotonic()
        delta = changes.delta
        for mirror in (delta.runner_sets, delta.runners, delta.ephemeral_runner_sets):
            for uid in (*mirror.upserts, *mirror.removals):
                self._stamps[uid] = _Stamp(self._position, began.get(uid, default_began), now)
        if self._position % 100 == 0:
            cutoff = now - TOMBSTONE_SECONDS
            self._stamps = {u: s for u, s in self._stamps.items() if s.at >= cutoff}

    def _after_commit(self, runners: Sequence[RawObject]) -> None:
        if self.on_commit is not None and runners:
            self.on_commit(runners, self.state)
