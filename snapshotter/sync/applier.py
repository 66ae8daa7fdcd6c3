"""The single writer (SPEC §4.1).

Producers (the scheduled poller, the watchers) only read Kubernetes and hand their
observations here. The applier keeps an in-memory mirror of the persisted state,
diffs each observation against it, writes the ChangeSet in one transaction and only
then adopts it. Every call must come from one thread (the daemon runs it on a
single-worker executor); a failed transaction reloads the mirror from the database.
"""

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from snapshotter.clock import Clock, monotonic
from snapshotter.diff import compute, matching
from snapshotter.diff.changes import ChangeSet, Cursor
from snapshotter.diff.state import Observation, PersistedState
from snapshotter.errors import StoreError
from snapshotter.kube import resources
from snapshotter.kube.client import Listing
from snapshotter.model import parse
from snapshotter.sync.observations import ParseReport, observe_listing
from snapshotter.sync.ports import Store

log = logging.getLogger(__name__)

TOMBSTONE_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What one transaction did, for logs, metrics and the `--once` summary."""

    changes: ChangeSet
    written: Mapping[str, int]
    listed: Mapping[str, int] = field(default_factory=dict)
    skipped: int = 0
    seconds: float = 0.0

    @property
    def rows_written(self) -> int:
        return sum(self.written.values())


class Applier:
    def __init__(self, store: Store, *, cluster_name: str, clock: Clock) -> None:
        self.store = store
        self.cluster_name = cluster_name
        self.clock = clock
        self.state = PersistedState()
        self.configs: tuple[matching.CompiledConfig, ...] = ()
        self.report = ParseReport()
        self._position = 0
        # uid -> (position, monotonic time) of the last observation applied for it;
        # kept a while after deletion so that an older list cannot resurrect it.
        self._applied: dict[str, tuple[int, float]] = {}
        self._config_errors: set[str] = set()

    @property
    def position(self) -> int:
        """A marker taken before listing; lists compare it with later observations."""
        return self._position

    def load(self) -> None:
        """(Re)load the persisted state; the ephemeral runner sets are not stored."""
        loaded = self.store.load_state()
        self.state = PersistedState(
            runner_sets=loaded.runner_sets,
            runners=loaded.runners,
            ephemeral_runner_sets=self.state.ephemeral_runner_sets,
        )

    def reload_configs(self) -> None:
        compiled = tuple(matching.compile_config(c) for c in self.store.load_configs())
        for config in compiled:
            if config.error and config.error not in self._config_errors:
                log.error("workflow config ignored: %s", config.error)
                self._config_errors.add(config.error)
        self.configs = compiled

    def apply_listings(self, listings: Sequence[Listing], *, since: int) -> ApplyResult:
        """Apply complete lists taken after `position` was `since`."""
        started = monotonic()
        self.reload_configs()
        skipped_before = self.report.skipped
        observation = self._observe_listings(listings, since=since)
        cursors = [
            Cursor(_cursor_name(listing), listing.resource_version, full_resync=True)
            for listing in listings
        ]
        result = self._apply(observation, cursors)
        self._forget_tombstones()
        return ApplyResult(
            changes=result.changes,
            written=result.written,
            listed={_cursor_name(listing): len(listing.items) for listing in listings},
            skipped=self.report.skipped - skipped_before,
            seconds=monotonic() - started,
        )

    def _observe_listings(self, listings: Sequence[Listing], *, since: int) -> Observation:
        keep = frozenset(uid for uid, (pos, _) in self._applied.items() if pos > since)
        items: dict[str, list[parse.RawObject]] = {r.plural: [] for r in resources.ALL}
        for listing in listings:
            items[listing.resource.plural].extend(listing.items)
        state, report = self.state, self.report
        return Observation(
            runner_sets=observe_listing(
                items[resources.AUTOSCALING_RUNNER_SETS.plural],
                parse.parse_runner_set,
                kind=resources.AUTOSCALING_RUNNER_SETS.kind,
                persisted_versions={u: r.resource_version for u, r in state.runner_sets.items()},
                keep=keep,
                report=report,
            ),
            ephemeral_runner_sets=observe_listing(
                items[resources.EPHEMERAL_RUNNER_SETS.plural],
                parse.parse_ephemeral_runner_set,
                kind=resources.EPHEMERAL_RUNNER_SETS.kind,
                persisted_versions={
                    u: r.identity.resource_version for u, r in state.ephemeral_runner_sets.items()
                },
                keep=keep,
                report=report,
            ),
            runners=observe_listing(
                items[resources.EPHEMERAL_RUNNERS.plural],
                parse.parse_ephemeral_runner,
                kind=resources.EPHEMERAL_RUNNERS.kind,
                persisted_versions={u: r.resource_version for u, r in state.runners.items()},
                keep=keep,
                report=report,
            ),
        )

    def _apply(self, observation: Observation, cursors: Iterable[Cursor]) -> ApplyResult:
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
        self._mark_applied(changes)
        return ApplyResult(changes=changes, written=dict(written.rows))

    def _reload_after_failure(self) -> None:
        try:
            self.load()
        except StoreError as e:
            log.warning("reloading persisted state failed, keeping the mirror error=%s", e)

    def _mark_applied(self, changes: ChangeSet) -> None:
        self._position += 1
        now = monotonic()
        delta = changes.delta
        for mirror in (delta.runner_sets, delta.runners, delta.ephemeral_runner_sets):
            for uid in (*mirror.upserts, *mirror.removals):
                self._applied[uid] = (self._position, now)

    def _forget_tombstones(self) -> None:
        cutoff = monotonic() - TOMBSTONE_SECONDS
        self._applied = {u: v for u, v in self._applied.items() if v[1] >= cutoff}


def _cursor_name(listing: Listing) -> str:
    name = listing.resource.plural
    return name if listing.namespace is None else f"{name}/{listing.namespace}"
