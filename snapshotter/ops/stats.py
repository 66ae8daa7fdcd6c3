"""What the sync engine measures, as Prometheus metrics and a periodic log line.

One registry per daemon (not the process-global one), so that several daemons can
run in one process (tests, embedding); it also carries the process, platform and
garbage-collector metrics and `snapshotter_build_info`. Names follow Prometheus
conventions: the `snapshotter_` prefix, base units (`_seconds`), `_total` for
counters; labels are bounded (resources, tables, kinds, and the job metrics' capped
label sets, see job_metrics.py; never a uid or a job id). Updated from several
threads; prometheus_client's metrics are thread-safe, and the few plain counters of
the log line take a lock.
"""

import importlib.metadata
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import (
    GC_COLLECTOR,
    CollectorRegistry,
    Gauge,
    GCCollector,
    Histogram,
    Metric,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client import Counter as PromCounter

from snapshotter.diff.rows import RunnerStateRow
from snapshotter.model import records
from snapshotter.ops.job_metrics import DEFAULT_JOB_LABELS, DEFAULT_SERIES_CAP, JobMetrics

DISTRIBUTION = "github-runners-snapshotter"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
CYCLE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_WITH_CREATED = ("counter", "histogram", "summary")
# Tables retention deletes from (SPEC §4.9), labelled from the start
RETENTION_TABLES = (
    "github_runner_set_history",
    "snapshotter_rejects",
    "github_ephemeral_runner_states",
)


class MetricsRegistry(CollectorRegistry):
    """A registry that exports no `_created` series. prometheus_client (0.26) can only
    turn them off for the whole process (`disable_created_metrics()`, a global flag),
    which would change the metrics of a process embedding the snapshotter; Prometheus
    does not need them, and they double the series of every counter and histogram."""

    def collect(self) -> Iterable[Metric]:
        for metric in super().collect():
            if metric.type in _WITH_CREATED:
                created = metric.name + "_created"
                metric.samples = [s for s in metric.samples if s.name != created]
            yield metric


def version() -> str:
    """The installed package's version ("unknown" when run from a bare source tree)."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def register_runtime_collectors(registry: CollectorRegistry) -> None:
    """process_* (CPU, memory, file descriptors), python_info and python_gc_*, on the
    daemon's own registry (prometheus_client puts them on its global one)."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    if GC_COLLECTOR is not None:  # None where the interpreter has no gc.get_stats
        GCCollector(registry=registry)


@dataclass
class LatencyStats:
    """Seconds from receiving an observation to committing it (for the log line)."""

    count: int = 0
    total: float = 0.0
    maximum: float = 0.0

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.maximum = max(self.maximum, seconds)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


class _Metrics:
    """The Prometheus side (see the module doc for the naming)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.cycle = Histogram(
            "snapshotter_poll_cycle_duration_seconds",
            "Poll cycles: listing everything and applying it",
            buckets=CYCLE_BUCKETS,
            registry=r,
        )
        self.list_duration = Histogram(
            "snapshotter_poll_list_duration_seconds",
            "Poll cycles: the lists alone",
            buckets=CYCLE_BUCKETS,
            registry=r,
        )
        self.listed = Gauge(
            "snapshotter_listed_objects", "Objects in the last list", ["resource"], registry=r
        )
        self.rows = PromCounter(
            "snapshotter_rows_written_total", "Rows written", ["table", "kind"], registry=r
        )
        self.events = PromCounter(
            "snapshotter_watch_events_total", "Watch events", ["resource", "type"], registry=r
        )
        self.watch_restarts = PromCounter(
            "snapshotter_watch_restarts_total",
            "Watch requests reopened (after an end, an error or a relist; not the first)",
            ["resource"],
            registry=r,
        )
        self.relists = PromCounter(
            "snapshotter_watch_relists_total",
            "Relists after 410 Gone or a too large resourceVersion",
            ["resource"],
            registry=r,
        )
        self.bookmarks = PromCounter(
            "snapshotter_watch_bookmarks_total", "Watch bookmarks", ["resource"], registry=r
        )
        self.refused = PromCounter(
            "snapshotter_watch_events_refused_total",
            "Events refused by a full pending queue (the watch relists)",
            registry=r,
        )
        self.pending = Gauge(
            "snapshotter_queue_pending_objects", "Objects waiting to be written", registry=r
        )
        self.capacity = Gauge(
            "snapshotter_queue_capacity_objects", "Cap of the pending queue", registry=r
        )
        self.latency = Histogram(
            "snapshotter_apply_latency_seconds",
            "From receiving an observation to committing it",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = PromCounter(
            "snapshotter_errors_total", "Errors by kind", ["kind"], registry=r
        )
        self.fitted = PromCounter(
            "snapshotter_values_fitted_total",
            "Values changed to fit their column (clipped, nulled, NUL dropped)",
            ["table", "column"],
            registry=r,
        )
        self.rejected = PromCounter(
            "snapshotter_objects_rejected_total",
            "Objects the database refused (recorded in snapshotter_rejects)",
            ["resource"],
            registry=r,
        )
        self.malformed = PromCounter(
            "snapshotter_objects_skipped_total", "Malformed objects skipped", registry=r
        )
        self.ignored_fields = PromCounter(
            "snapshotter_fields_ignored_total",
            "Fields ignored as malformed (a wrong type, a bad quantity), once per object version",
            ["kind"],
            registry=r,
        )
        self.last_commit = Gauge(
            "snapshotter_last_commit_timestamp_seconds",
            "When the last committed transaction began (Unix time)",
            registry=r,
        )
        self.database_up = Gauge(
            "snapshotter_database_available", "1 while the database answers", registry=r
        )
        self.leader = Gauge(
            "snapshotter_leader", "1 while this replica is the one that writes", registry=r
        )
        self.finalizers = PromCounter(
            "snapshotter_finalizer_patches_total",
            "Finalizer patches (finalizer capture)",
            ["action"],
            registry=r,
        )
        self.lease_errors = PromCounter(
            "snapshotter_leader_election_errors_total",
            "Lease calls that were refused or failed, by reason",
            ["reason"],
            registry=r,
        )
        self.retention = PromCounter(
            "snapshotter_retention_deleted_rows_total",
            "Rows deleted by retention, by table",
            ["table"],
            registry=r,
        )
        self.build_info = Gauge(
            "snapshotter_build_info", "The snapshotter's version; always 1", ["version"], registry=r
        )
        self.build_info.labels(version()).set(1)
        for resource in (records.RUNNER_SETS, records.EPHEMERAL_RUNNER_SETS, records.RUNNERS):
            # present from the start, so that the first rejection is an increase
            self.rejected.labels(resource)
        for table in RETENTION_TABLES:
            self.retention.labels(table)


@dataclass
class SyncStats:
    """The engine's counters: Prometheus metrics, plus totals for the log line.
    `job_labels` and `job_series_cap`: see job_metrics.py."""

    registry: CollectorRegistry = field(default_factory=MetricsRegistry)
    job_labels: Sequence[str] = DEFAULT_JOB_LABELS
    job_series_cap: int = DEFAULT_SERIES_CAP
    events: int = 0
    bookmarks: int = 0
    watch_restarts: int = 0
    relists: int = 0
    refused: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    fitted: int = 0
    rejected: int = 0
    commits: int = 0
    dropped_at_shutdown: int = 0
    apply_latency: LatencyStats = field(default_factory=LatencyStats)
    _streams: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.metrics = _Metrics(self.registry)
        self.jobs = JobMetrics(self.registry, labels=self.job_labels, cap=self.job_series_cap)

    def _add(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    # -- the watch ---------------------------------------------------------------

    def watch_opened(self, stream: str) -> None:
        """A watch request of `stream` opened: a restart unless it is the stream's first."""
        with self._lock:
            first = stream not in self._streams
            self._streams.add(stream)
            if not first:
                self.watch_restarts += 1
        restarts = self.metrics.watch_restarts.labels(stream)  # 0 from the first watch on
        if not first:
            restarts.inc()

    def relisted(self, stream: str) -> None:
        self._add("relists")
        self.metrics.relists.labels(stream).inc()

    def bookmark(self, stream: str) -> None:
        self._add("bookmarks")
        self.metrics.bookmarks.labels(stream).inc()

    def event(self, stream: str, kind: str) -> None:
        self._add("events")
        self.metrics.events.labels(stream, kind).inc()

    def refused_event(self) -> None:
        self._add("refused")
        self.metrics.refused.inc()

    # -- the writer --------------------------------------------------------------

    def error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1
        self.metrics.errors.labels(kind).inc()

    def committed(
        self, rows: Mapping[str, int], fitted: Mapping[str, int], *, began: datetime
    ) -> None:
        """A transaction committed; `began` is when it started, before the leader
        fence was checked, so a replica paused mid-commit never stamps a time after
        a successor's takeover."""
        self._add("commits")
        self._add("fitted", sum(fitted.values()))
        for key, n in rows.items():
            table, _, kind = key.partition(".")
            self.metrics.rows.labels(table, kind).inc(n)
        for key, n in fitted.items():
            table, _, column = key.partition(".")
            self.metrics.fitted.labels(table, column).inc(n)
        self.metrics.last_commit.set(began.timestamp())

    def latency(self, seconds: float) -> None:
        with self._lock:
            self.apply_latency.observe(seconds)
        self.metrics.latency.observe(seconds)

    def reject(self, resource: str) -> None:
        self._add("rejected")
        self.metrics.rejected.labels(resource).inc()

    def job_finished(self, row: RunnerStateRow) -> None:
        self.jobs.observe(row)

    def dropped(self, n: int) -> None:
        self._add("dropped_at_shutdown", n)

    def database_available(self, up: bool) -> None:
        self.metrics.database_up.set(1 if up else 0)

    def leading(self, leader: bool) -> None:
        self.metrics.leader.set(1 if leader else 0)

    def leader_election_error(self, reason: str) -> None:
        """A Lease call refused or failed; `reason` is a short bounded word (forbidden,
        invalid, unavailable, conflict, ...), never a message."""
        self.metrics.lease_errors.labels(reason).inc()

    def watch_queue(self, pending: Callable[[], int], capacity: int) -> None:
        self.metrics.pending.set_function(pending)
        self.metrics.capacity.set(capacity)

    # -- the poller and others ---------------------------------------------------

    def cycle(self, listed: Mapping[str, int], list_seconds: float, seconds: float) -> None:
        self.metrics.list_duration.observe(list_seconds)
        self.metrics.cycle.observe(seconds)
        for stream, n in listed.items():
            self.metrics.listed.labels(stream).set(n)

    def malformed(self, n: int = 1) -> None:
        self.metrics.malformed.inc(n)

    def ignored_fields(self, kind: str, n: int) -> None:
        self.metrics.ignored_fields.labels(kind).inc(n)

    def retention_deleted(self, table: str, n: int) -> None:
        self.metrics.retention.labels(table).inc(n)

    def finalizer_patched(self, action: str) -> None:
        self.metrics.finalizers.labels(action).inc()

    def line(self) -> str:
        """A compact `key=value` summary for the periodic log line."""
        with self._lock:
            return (
                f"events={self.events} bookmarks={self.bookmarks} "
                f"watch_restarts={self.watch_restarts} relists_410={self.relists} "
                f"refused={self.refused} errors={sum(self.errors.values())} "
                f"fitted={self.fitted} rejected={self.rejected} commits={self.commits} "
                f"events_applied={self.apply_latency.count} "
                f"apply_latency_mean_ms={1000 * self.apply_latency.mean:.0f} "
                f"apply_latency_max_ms={1000 * self.apply_latency.maximum:.0f}"
            )
