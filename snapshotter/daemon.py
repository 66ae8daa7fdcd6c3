"""Wiring: builds the adapters from Settings, then runs `--once` or the daemon.

`run(settings, stop_event)` is the one documented way to embed the snapshotter in
another Python process: it returns when `stop_event` is set, after what is pending
has been committed. Start-up failures raise StartupError.
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
    SnapshotterError,
    StartupError,
    StoreError,
    StoreForbidden,
    StoreUnavailable,
)
from snapshotter.kube import resources
from snapshotter.kube.client import KubeClient, load_api_client
from snapshotter.kube.lease import LeaseClient
from snapshotter.ops.endpoints import Endpoints
from snapshotter.ops.health import Health, HealthLimits
from snapshotter.ops.leader import Elector, Timing
from snapshotter.ops.stats import SyncStats, register_runtime_collectors
from snapshotter.scheduler import PollSchedule
from snapshotter.settings import Settings
from snapshotter.sync.applier import Applier, ApplyResult, stream_name
from snapshotter.sync.backoff import Backoff
from snapshotter.sync.cycle import PollResult, poll_once
from snapshotter.sync.finalizers import FinalizerKeeper, release_all
from snapshotter.sync.intake import Intake
from snapshotter.sync.observations import ParseReport
from snapshotter.sync.queue import PendingQueue
from snapshotter.sync.retention import Policy, RetentionWorker, run_pass
from snapshotter.sync.watcher import Watcher, WatchTuning
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


def run(settings: Settings, stop_event: threading.Event) -> None:
    """Run the daemon until `stop_event` is set."""
    with components(settings, stop_event) as parts:
        daemon = _Daemon(settings, parts)
        try:
            if daemon.start(stop_event):
                daemon.supervise(stop_event)
        finally:
            daemon.shutdown()
    log.info("stopped")


class _Daemon:
    """The running parts: writer thread, poll schedule, watchers, finalizer worker,
    HTTP endpoints and, with leader election, the elector."""

    def __init__(self, settings: Settings, parts: Components) -> None:
        self.settings = settings
        self.parts = parts
        self.watchers: list[Watcher] = []
        self.schedule = PollSchedule(
            self._poll, interval_seconds=settings.interval_seconds, run_now=False
        )
        self._stopping = False
        self.elector = self._elector() if settings.leader_election.enabled else None
        self.health = Health(
            writer=parts.writer,
            watchers=self.watchers,
            liveness=parts.applier.watches,
            schedule_running=lambda: self.schedule.running,
            elector=self.elector,
            limits=HealthLimits.of(
                interval=settings.interval_seconds,
                database_timeout=settings.database.timeout_seconds,
                read_timeout=settings.watch.read_timeout_seconds,
            ),
        )
        self.endpoints = self._endpoints()
        self.retention = self._retention() if settings.retention.enabled else None

    def _retention(self) -> RetentionWorker:
        return RetentionWorker(
            purger(self.parts.store, self.settings),
            retention_policy(self.settings),
            clock=utc_now,
            leading=lambda: self.parts.writer.leading,
            stats=self.parts.stats,
            quiet=lambda: self.parts.writer.idle,
        )

    def _elector(self) -> Elector:
        election = self.settings.leader_election
        lock = LeaseClient(
            self.parts.kube.api_client,
            namespace=election.namespace,
            name=self.settings.lease_name,
            timeout=self.settings.kubernetes.request_timeout_seconds,
        )
        return Elector(
            lock,
            identity=election.identity,
            clock=utc_now,
            on_started=self._started_leading,
            on_stopped=self._stopped_leading,
            on_error=self.parts.stats.leader_election_error,
            may_lead=self._may_lead,
            timing=Timing(
                election.lease_duration_seconds,
                election.renew_deadline_seconds,
                election.retry_period_seconds,
            ),
        )

    def _endpoints(self) -> Endpoints | None:
        metrics = self.settings.metrics
        if not metrics.port:
            return None
        try:
            return Endpoints(
                self.parts.stats.registry,
                address=metrics.address,
                port=metrics.port,
                health=self.health.problems,
                ready=self.health.readiness,
            )
        except OSError as e:
            raise StartupError(
                f"cannot serve metrics on {metrics.address}:{metrics.port}: {e}"
            ) from e

    def _scopes(self) -> list[str | None]:
        return list(self.settings.namespaces) or [None]

    def _watched(self) -> tuple[resources.Resource, ...]:
        if not self.settings.watch.enabled:
            return ()
        return (
            resources.ALL if self.settings.watch.all_resources else (resources.EPHEMERAL_RUNNERS,)
        )

    # -- leadership --------------------------------------------------------------

    def _standby_memory(self) -> timedelta:
        """What a standby keeps: enough to cover a failover gap."""
        election = self.settings.leader_election
        return timedelta(
            seconds=3 * election.lease_duration_seconds + self.settings.interval_seconds
        )

    def _may_lead(self) -> str | None:
        """Why this replica must not lead now: the database is out of its reach."""
        limit = self.settings.leader_election.release_when_database_lost_seconds
        writer = self.parts.writer
        lost, stalled = writer.unreachable_for(), writer.stalled_for()
        if limit and lost >= limit:
            return f"the database is out of reach for {lost:.0f}s"
        if limit and stalled >= limit:
            return f"no commit for {stalled:.0f}s with work pending"
        return None

    def _started_leading(self) -> None:
        # the new leader's start-up reconciliation, as soon as it may write
        self.parts.writer.lead(self._take_over, then=self.schedule.run_soon)

    def _take_over(self) -> None:
        """On the writer thread: bump the epoch (fencing the previous leader), then
        start from what the database says."""
        election = self.settings.leader_election
        epoch = self.parts.store.take_leadership(election.identity, now=utc_now())
        self.parts.applier.load()
        self.health.synced = False
        log.info("leading epoch=%d identity=%s", epoch, election.identity)

    def _stopped_leading(self) -> None:
        cut_off = self._may_lead()
        if cut_off is not None:
            # Stepped down because nothing could be written: maybe no replica can.
            # What it holds is kept whole (a standby's trimming would drop jobs
            # nobody recorded), and runners stay held by the finalizer.
            log.warning("keeping every pending observation as a standby reason=%s", cut_off)
            self.parts.writer.follow(keep=None)
            return
        self.parts.writer.follow(keep=self._standby_memory())
        keeper = self.parts.keeper
        if keeper is not None and not self._stopping:
            self._release_finalizers()  # the duty moves with the leadership

    # -- polling -----------------------------------------------------------------

    def _poll(self, stop: threading.Event | None = None) -> PollResult | None:
        """A poll cycle; at start-up (`stop` given) it waits until it is applied."""
        writer = self.parts.writer
        if self.elector is not None and not writer.leading and writer.is_alive():
            return None  # a standby does not poll; its watches stay warm
        wait = None if stop is not None else self.settings.interval_seconds
        try:
            result = poll_once(
                self.parts.kube,
                self.parts.intake,
                namespaces=self.settings.namespaces,
                wait=wait,
                stop=stop,
                on_queued=None if writer.is_alive() else writer.start,
            )
        except SnapshotterError as e:
            log.error("poll cycle failed, retrying at the next tick error=%s", e)
            self.parts.stats.error("poll")
        except Exception:  # a bug must not stop the daemon; it is logged in full
            log.exception("poll cycle crashed, retrying at the next tick")
            self.parts.stats.error("poll-crash")
        else:
            self.parts.stats.cycle(result.listed, result.list_seconds, result.seconds)
            self.health.listed()
            if result.applied is not None:
                self.health.synced = True
            if self.watchers:
                log.info(
                    "watch stats %s pending=%d",
                    self.parts.stats.line(),
                    len(self.parts.intake.queue),
                )
            return result
        return None

    def _reconcile_at_start(self, stop: threading.Event) -> PollResult | None:
        """SPEC §4.5: a full list and diff of everything before watching; retried until
        it is applied (what vanished while the daemon was down is recorded here)."""
        backoff = Backoff(initial=1.0, maximum=30.0)
        while not stop.is_set():
            log.info("start-up reconciliation: listing everything")
            result = self._poll(stop)
            if result is not None and result.applied is not None:
                return result
            stop.wait(backoff.next())
        return None

    # -- start, run, stop ----------------------------------------------------------

    def _start_watchers(self, versions: dict[str, str]) -> None:
        tuning = WatchTuning(read_timeout_seconds=self.settings.watch.read_timeout_seconds)
        self.watchers.extend(
            Watcher(
                source=self.parts.kube,
                intake=self.parts.intake,
                liveness=self.parts.applier.watches,
                resource=resource,
                namespace=scope,
                stats=self.parts.stats,
                tuning=tuning,
                resume_from=versions.get(stream_name(resource.plural, scope)),
            )
            for resource in self._watched()
            for scope in self._scopes()
        )
        for watcher in self.watchers:
            watcher.start()

    def start(self, stop: threading.Event) -> bool:
        """Reconcile, then start watching and polling; False if stopped before. With
        leader election, start as a standby with warm watches and let the elector
        decide."""
        if self.endpoints is not None:
            self.endpoints.start()
        if self.parts.keeper:
            self.parts.keeper.start()
        if self.elector is not None:
            self.parts.writer.follow(keep=self._standby_memory())
            self.parts.writer.start()
            self._start_watchers({})  # each watch lists first
            self.schedule.start()
            self.elector.start()
        else:
            self.parts.stats.leading(True)  # the only replica: it writes
            initial = self._reconcile_at_start(stop)
            if initial is None:
                return False
            self._start_watchers(initial.versions)
            self.schedule.start()
        if self.retention is not None:
            self.retention.start()  # its passes run while this replica leads
        self.health.started = True
        log.info(
            "daemon started interval_s=%s watches=%s finalizer_capture=%s leader_election=%s",
            self.settings.interval_seconds,
            [w.name_ for w in self.watchers],
            self.parts.keeper is not None,
            self.elector is not None,
        )
        return True

    def supervise(self, stop: threading.Event) -> None:
        """Wait for the stop request; a thread that died is a crash (exit 1)."""
        while not stop.wait(1.0):
            dead = self.health.dead_threads()
            if dead:
                raise RuntimeError(f"thread died: {dead}")

    def shutdown(self) -> None:
        """Stop producers, commit what is pending, then give up the Lease and, in
        finalizer mode, release every runner."""
        log.info("stopping: committing pending observations")
        self._stopping = True
        if self.retention is not None:
            self.retention.stop()
        for watcher in self.watchers:
            watcher.stop()
        for watcher in self.watchers:
            watcher.join(timeout=30)
        self.schedule.shutdown()  # waits for a running cycle
        keeper = self.parts.keeper
        leading = self.parts.writer.leading
        if keeper is not None and leading:
            self._poll()  # the last states of runners waiting on our finalizer
        self.parts.writer.close()
        if self.elector is not None:
            self.elector.stop()
            self.elector.join(timeout=30)
        if keeper is not None:
            keeper.close()
            if leading:
                self._release_finalizers()
        if self.endpoints is not None:
            self.endpoints.close()

    def _release_finalizers(self) -> None:
        try:
            released = release_all(self.parts.kube, self._scopes())
        except KubeError as e:
            log.error(
                "could not release finalizers, run `snapshotter finalizers remove` error=%s", e
            )
        else:
            log.info("released finalizers runners=%d", released)
