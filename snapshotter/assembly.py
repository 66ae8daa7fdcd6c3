"""Assembly: the adapters built from Settings (store, Kubernetes client, engine
parts), and the short-lived commands that use them: `--once`, `finalizers remove`.

Every start-up failure is a StartupError with a one-line message; the running
daemon (daemon.py) is built from the same `components`.
"""

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from snapshotter.clock import utc_now
from snapshotter.db import engine as db_engine
from snapshotter.db import migrate, retention
from snapshotter.db.store import DeclaredConfig, Store
from snapshotter.diff.runner_kinds import RunnerKinds
from snapshotter.errors import (
    KubeError,
    KubeUnavailable,
    StartupError,
    StoreError,
    StoreForbidden,
    StoreUnavailable,
)
from snapshotter.kube import resources
from snapshotter.kube.client import KubeClient, load_api_client
from snapshotter.ops.stats import SyncStats, register_runtime_collectors
from snapshotter.settings import Settings
from snapshotter.sync.applier import Applier, ApplyResult
from snapshotter.sync.cycle import PollResult, poll_once
from snapshotter.sync.finalizers import FinalizerKeeper, release_all
from snapshotter.sync.intake import Intake
from snapshotter.sync.observations import ParseReport
from snapshotter.sync.queue import PendingQueue
from snapshotter.sync.retention import Policy, run_pass
from snapshotter.sync.writer import Writer

log = logging.getLogger(__name__)

T = TypeVar("T")
STARTUP_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Components:
    store: Store
    kube: KubeClient
    applier: Applier
    intake: Intake
    writer: Writer
    stats: SyncStats
    report: ParseReport
    keeper: FinalizerKeeper | None


@dataclass(frozen=True, slots=True)
class OnceResult:
    """What `--once` did: the lists, and everything the writer committed."""

    poll: PollResult
    applied: ApplyResult
    skipped: int
    deleted: Counter[str] = field(default_factory=Counter)  # by retention (--retention)


def _retrying(
    what: str,
    attempt: Callable[[], T],
    *,
    retry_on: type[Exception],
    stop: threading.Event,
    give_up_on: type[Exception] | None = None,
) -> T:
    """Bounded retries (1, 2, 4, 8 s) for dependencies that may still be starting;
    `give_up_on` (a refused login or missing rights) is not retried."""
    for n in range(STARTUP_ATTEMPTS):
        try:
            return attempt()
        except retry_on as e:
            if give_up_on is not None and isinstance(e, give_up_on):
                raise StartupError(f"{what}: {e}") from e
            if n == STARTUP_ATTEMPTS - 1 or stop.is_set():
                raise StartupError(f"{what}: {e}") from e
            log.warning("%s failed, retrying in %ds error=%s", what, 2**n, e)
            stop.wait(2**n)
    raise AssertionError("unreachable")


def open_store(settings: Settings, stop: threading.Event) -> Store:
    """Connect, bring the schema to head (or refuse), and upsert YAML-declared configs.
    Every database problem is a StartupError with a one-line message."""
    url = settings.database.effective_url()
    engine = db_engine.make_engine(url, timeout_seconds=settings.database.timeout_seconds)
    if engine.dialect.name == "sqlite":
        settings.database.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _prepared_store(settings, engine, stop)
    except StoreError as e:
        engine.dispose()
        raise StartupError(str(e)) from e
    except BaseException:
        engine.dispose()
        raise


def _prepared_store(settings: Settings, engine: db_engine.Engine, stop: threading.Event) -> Store:
    timeout = settings.database.timeout_seconds
    revision = _retrying(
        f"connecting to the database {db_engine.masked_url(settings.database.effective_url())}",
        lambda: migrate.current_revision(engine),
        retry_on=StoreUnavailable,
        give_up_on=StoreForbidden,
        stop=stop,
    )
    if revision != migrate.head_revision():
        if not settings.database.auto_migrate:
            raise StartupError(
                f"database schema is at {revision or 'nothing'}, not {migrate.head_revision()}: "
                "run `snapshotter db upgrade` or set database.auto_migrate"
            )
        log.info("upgrading schema from=%s to=%s", revision, migrate.head_revision())
        migrate.upgrade(engine)
    store = Store(
        engine,
        cluster_name=settings.cluster_name,
        namespaces=settings.namespaces,
        timeout=max(5.0, 2 * timeout),
        runner_kinds=RunnerKinds.from_pattern(settings.lens.worker_name_pattern),
        collection_tasks=settings.lens.collection_tasks,
    )
    store.check_lens_tables()
    declared = [DeclaredConfig(**c.model_dump()) for c in settings.workflow_configs]
    if declared:
        store.upsert_declared_configs(declared, now=utc_now())
    return store


def open_kube(settings: Settings, stop: threading.Event) -> KubeClient:
    """A client that can list all three resources (CRDs installed, RBAC allowing)."""
    api_client = load_api_client(
        kubeconfig=settings.kubernetes.kubeconfig, context=settings.kubernetes.context
    )
    kube = KubeClient(
        api_client,
        page_size=settings.kubernetes.page_size,
        request_timeout=settings.kubernetes.request_timeout_seconds,
    )

    def check() -> None:
        for resource in resources.ALL:
            for scope in settings.namespaces or [None]:
                kube.check_resource(resource, scope)

    try:
        _retrying("reaching the Kubernetes API", check, retry_on=KubeUnavailable, stop=stop)
    except KubeError as e:
        kube.close()
        raise StartupError(f"cannot list the ARC resources: {e}") from e
    except StartupError:
        kube.close()
        raise
    return kube


def _history_period(settings: Settings) -> timedelta:
    seconds = settings.writer.history_period_seconds or settings.interval_seconds
    return timedelta(seconds=seconds)


def retention_policy(settings: Settings) -> Policy:
    """The `retention` section as plain values: each table's age limit (SPEC §4.9)."""
    config = settings.retention
    days = {
        retention.HISTORY.name: config.history_days,
        retention.REJECTS.name: config.rejects_days,
        retention.RUNNERS.name: config.runner_states_days,
    }
    return Policy(
        ages={table: timedelta(days=n) for table, n in days.items() if n is not None},
        batch_size=config.batch_size,
        pause_seconds=config.pause_seconds,
        period_seconds=config.period_seconds,
    )


def purger(store: Store, settings: Settings) -> retention.Purger:
    """Deletes through the store's engine, fenced by the store's leader epoch."""
    return retention.Purger(
        store.engine,
        cluster_name=settings.cluster_name,
        namespaces=settings.namespaces,
        timeout=store.timeout,
        fence=lambda: store.fence,
    )


def claim_cluster(store: Store, kube: KubeClient, settings: Settings) -> None:
    """Refuse to write a cluster_name another cluster (by its identity) writes."""
    try:
        identity = kube.cluster_identity()
    except KubeError as e:
        log.warning(
            "cluster identity unknown (cannot read namespace kube-system): two clusters "
            "sharing a cluster_name would not be told apart error=%s",
            e,
        )
        return
    try:
        other = store.claim_cluster(identity, now=utc_now())
    except StoreError as e:
        raise StartupError(str(e)) from e
    if other is not None:
        raise StartupError(
            f"cluster_name {settings.cluster_name!r} is already written by another cluster "
            f"(kube-system uid {other}; this one is {identity}): give each cluster its own "
            "cluster_name"
        )


def _load(applier: Applier) -> None:
    try:
        applier.load()
    except StoreError as e:
        raise StartupError(f"loading the persisted state: {e}") from e


@contextmanager
def components(
    settings: Settings, stop: threading.Event, *, retry_outages: bool = True
) -> Iterator[Components]:
    # Kubernetes first: without it there is nothing to record, and the store would
    # create (and migrate) the embedded SQLite file for nothing.
    kube = open_kube(settings, stop)
    try:
        store = open_store(settings, stop)
    except BaseException:
        kube.close()
        raise
    stats = SyncStats(
        job_labels=settings.metrics.job_labels, job_series_cap=settings.metrics.job_series_cap
    )
    register_runtime_collectors(stats.registry)
    stats.database_available(True)  # open_store reached it; the writer reports changes
    applier = Applier(
        store,
        cluster_name=settings.cluster_name,
        clock=utc_now,
        stats=stats,
        history_period=_history_period(settings),
        runner_kinds=store.runner_kinds,
    )
    try:
        _load(applier)
        claim_cluster(store, kube, settings)
        keeper = FinalizerKeeper(kube, stats=stats) if settings.finalizer_capture.enabled else None
        applier.on_commit = keeper.on_commit if keeper else None
        queue = PendingQueue(cap=settings.writer.max_pending_objects)
        stats.watch_queue(queue.__len__, queue.cap)
        report = ParseReport(stats=stats)
        intake = Intake(queue, applier.stored_version, report, utc_now)
        writer = Writer(
            applier,
            queue,
            batch_max=settings.writer.batch_size,
            retry_outages=retry_outages,
            idle_probe_seconds=settings.interval_seconds,
        )
        yield Components(store, kube, applier, intake, writer, stats, report, keeper)
    finally:
        kube.close()
        store.close()


def reconcile_once(settings: Settings, *, with_retention: bool = False) -> OnceResult:
    """One full reconciliation (`--once`), then a retention pass if asked. Raises
    KubeError/StoreError if it fails."""
    with components(settings, threading.Event(), retry_outages=False) as parts:
        try:
            poll = poll_once(
                parts.kube,
                parts.intake,
                namespaces=settings.namespaces,
                on_queued=parts.writer.start,
            )
        finally:
            parts.writer.close()
        if parts.writer.totals.rejected:
            log.warning("objects rejected rejected=%d", parts.writer.totals.rejected)
        deleted: Counter[str] = Counter()
        if with_retention:
            deleting = purger(parts.store, settings)
            try:
                policy = retention_policy(settings)
                deleted = run_pass(deleting, policy, clock=utc_now, stats=parts.stats)
            finally:
                deleting.close()
        return OnceResult(poll, parts.writer.totals, parts.report.skipped, deleted)


def remove_finalizers(settings: Settings) -> int:
    """`snapshotter finalizers remove`: our finalizer off every runner in scope."""
    kube = open_kube(settings, threading.Event())
    try:
        return release_all(kube, settings.namespaces or [None])
    finally:
        kube.close()
