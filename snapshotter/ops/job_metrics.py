"""The job metrics, with labels a Prometheus server can afford.

Every finished job becomes one count and two observations (runner start-up, job
duration), and adds its requests x its duration to each of its resources. Their
labels are a configured subset of the pool's namespace and name, the repository,
the workflow and the completion source; repositories and workflows are unbounded,
so the number of label sets is capped: past the cap, a new label set is counted
under `other` in every label, and `snapshotter_job_series_folded_total` says how
many jobs were. A label set once admitted keeps its own series.
"""

import threading
from collections.abc import Sequence
from typing import TypeVar

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import Counter as PromCounter

from snapshotter.diff.rows import RunnerStateRow

# Option name -> Prometheus label. The pool's labels are ARC's: its listener labels
# every gha_* metric of a scale set with `namespace` and `name`.
JOB_LABELS = {
    "pool_namespace": "namespace",
    "pool_name": "name",
    "repository": "repository",
    "workflow": "workflow",
    "completion_source": "completion_source",
}
DEFAULT_JOB_LABELS = ("pool_namespace", "pool_name", "completion_source")
DEFAULT_SERIES_CAP = 500
OTHER = "other"
STARTUP_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
DURATION_BUCKETS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800)
M = TypeVar("M", PromCounter, Histogram)
CPU, MILLI = "cpu", 1000  # requests hold cpu in millicores; the metric counts cores


def _value(row: RunnerStateRow, option: str) -> str:
    values = {
        "pool_namespace": row.runner_set_namespace,
        "pool_name": row.runner_set_name,
        "repository": row.job_repository,
        "workflow": row.workflow_name,
        "completion_source": row.completion_source,
    }
    return values[option] or ""


class SeriesCap:
    """Admits up to `cap` distinct label sets; a new one past the cap is folded into
    (OTHER, ...). Thread-safe: the writer and the shutdown path both record jobs."""

    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError("the series cap must be at least 1")
        self.cap = cap
        self._admitted: set[tuple[str, ...]] = set()
        self._lock = threading.Lock()

    def admit(self, values: tuple[str, ...]) -> tuple[str, ...] | None:
        """`values` if it has (or gets) its own series, else None: fold it."""
        with self._lock:
            if values in self._admitted:
                return values
            if len(self._admitted) >= self.cap:
                return None
            self._admitted.add(values)
            return values

    def __len__(self) -> int:
        with self._lock:
            return len(self._admitted)


class JobMetrics:
    """snapshotter_jobs_finished_total, snapshotter_runner_startup_seconds,
    snapshotter_job_duration_seconds and snapshotter_job_resource_seconds_total, all
    with the same labels (the last one also with `resource`)."""

    def __init__(self, registry: CollectorRegistry, *, labels: Sequence[str], cap: int) -> None:
        unknown = [option for option in labels if option not in JOB_LABELS]
        if unknown or len(set(labels)) != len(labels):
            raise ValueError(f"job labels must be distinct names among {sorted(JOB_LABELS)}")
        self.options = tuple(labels)
        self.cap = SeriesCap(cap)
        names = [JOB_LABELS[option] for option in self.options]
        self.finished = PromCounter(
            "snapshotter_jobs_finished_total",
            "Jobs finished, as recorded",
            names,
            registry=registry,
        )
        self.startup = Histogram(
            "snapshotter_runner_startup_seconds",
            "From a runner's creation to its job being assigned",
            names,
            buckets=STARTUP_BUCKETS,
            registry=registry,
        )
        self.duration = Histogram(
            "snapshotter_job_duration_seconds",
            "From a job being assigned to its runner finishing",
            names,
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.resource_seconds = PromCounter(
            "snapshotter_job_resource_seconds",
            "Requested amount x job duration, per resource of the runner's pod: "
            "cpu in core-seconds, memory in byte-seconds, others (amd.com/gpu) in unit-seconds",
            [*names, "resource"],
            registry=registry,
        )
        self.folded = PromCounter(
            "snapshotter_job_series_folded_total",
            "Jobs counted under 'other' because the job metrics reached their series cap",
            registry=registry,
        )

    def labels_of(self, row: RunnerStateRow) -> tuple[str, ...]:
        """The label values this job is counted under (folded past the cap)."""
        values = tuple(_value(row, option) for option in self.options)
        admitted = self.cap.admit(values)
        if admitted is not None:
            return admitted
        self.folded.inc()
        return (OTHER,) * len(values)

    def observe(self, row: RunnerStateRow) -> None:
        values = self.labels_of(row)
        self._child(self.finished, values).inc()
        if row.job_assigned_at and row.creation_timestamp:
            started = (row.job_assigned_at - row.creation_timestamp).total_seconds()
            self._child(self.startup, values).observe(max(0.0, started))
        if row.job_assigned_at and row.completed_at:
            duration = (row.completed_at - row.job_assigned_at).total_seconds()
            self._child(self.duration, values).observe(max(0.0, duration))
            self._resource_seconds(values, row, max(0.0, duration))

    def _resource_seconds(
        self, values: tuple[str, ...], row: RunnerStateRow, seconds: float
    ) -> None:
        for resource, amount in (row.resource_requests or {}).items():
            per_unit = amount / MILLI if resource == CPU else amount
            self.resource_seconds.labels(*values, resource).inc(per_unit * seconds)

    @staticmethod
    def _child(metric: M, values: tuple[str, ...]) -> M:
        # A metric without labels is its own (only) series.
        return metric.labels(*values) if values else metric
