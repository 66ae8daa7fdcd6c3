"""Wiring: builds the adapters from Settings, then runs `--once` or the daemon.

`run(settings, stop_event)` is the one documented way to embed the snapshotter in
another Python process: it returns when `stop_event` is set, after what is pending
has been committed. Start-up failures raise StartupError.
"""

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from snapshotter.clock import utc_now
from snapshotter.db import engine as db_engine
from snapshotter.db import migrate
from snapshotter.db.store import DeclaredConfig, Store
from snapshotter.errors import (
    KubeError,
    KubeUnavailable,
    SnapshotterError,
    StartupError,
    StoreError,
)
from snapshotter.kube import resources
from snapshotter.kube.client import KubeClient, load_api_client
from snapshotter.scheduler import PollSchedule
from snapshotter.settings import Settings
from snapshotter.sync.applier import Applier, ApplyResult, stream_name
from snapshotter.sync.backoff import Backoff
from snapshotter.sync.cycle import PollResult, poll_once
from snapshotter.sync.finalizers import FinalizerKeeper, release_all
from snapshotter.sync.intake import Intake
from snapshotter.sync.observations import ParseReport
from snapshotter.sync.queue import PendingQueue
from snapshotter.sync.stats import SyncStats
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


def _retrying(
    what: str, attempt: Callable[[], T], *, retry_on: type[Exception], stop: threading.Event
) -> T:
    """Bounded retries (1, 2, 4, 8 s) for dependencies that may still be starting."""
    for n in range(STARTUP_ATTEMPTS):
        try:
            return attempt()
        except retry_on as e:
            if n == STARTUP_ATTEMPTS - 1 or stop.is_set():
                raise StartupError(f"{what}: {e}") from e
            log.warning("%s failed, retrying in %ds error=%s", what, 2**n, e)
            stop.wait(2**n)
    raise AssertionError("unreachable")


def open_store(settings: Settings, stop: threading.Event) -> Store:
    """Connect, bring the schema to head (or refuse), and upsert YAML-declared configs."""
    url = settings.database.effective_url()
    if db_engine.is_sqlite(url):
        settings.database.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    timeout = settings.database.timeout_seconds
    engine = db_engine.make_engine(url, timeout_seconds=timeout)
    revision = _retrying(
        f"connecting to the database {settings.database.masked_url()}",
        lambda: migrate.current_revision(engine),
        retry_on=StoreError,
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
    )
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


@contextmanager
def components(
    settings: Settings, stop: threading.Event, *, retry_outages: bool = True
) -> Iterator[Components]:
    store = open_store(settings, stop)
    try:
        kube = open_kube(settings, stop)
    except BaseException:
        store.close()
        raise
    stats = SyncStats()
    keeper = FinalizerKeeper(kube, stats=stats) if settings.finalizer_capture.enabled else None
    applier = Applier(
        store,
        cluster_name=settings.cluster_name,
        clock=utc_now,
        stats=stats,
        history_period=_history_period(settings),
        on_commit=keeper.on_commit if keeper else None,
    )
    queue = PendingQueue(cap=settings.writer.max_pending_objects)
    report = ParseReport()
    intake = Intake(queue, applier.stored_version, report, utc_now)
    writer = Writer(
        applier, queue, batch_max=settings.writer.batch_size, retry_outages=retry_outages
    )
    try:
        try:
            applier.load()
        except StoreError as e:
            raise StartupError(f"loading the persisted state: {e}") from e
        yield Components(store, kube, applier, intake, writer, stats, report, keeper)
    finally:
        kube.close()
        store.close()


def reconcile_once(settings: Settings) -> OnceResult:
    """One full reconciliation (`--once`). Raises KubeError/StoreError if it fails."""
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
        return OnceResult(poll, parts.writer.totals, parts.report.skipped)


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
    """The running parts: writer thread, poll schedule, watchers, finalizer worker."""

    def __init__(self, settings: Settings, parts: Components) -> None:
        self.settings = settings
        self.parts = parts
        self.watchers: list[Watcher] = []
        self.schedule = PollSchedule(
            self._poll, interval_seconds=settings.interval_seconds, run_now=False
        )

    def _scopes(self) -> list[str | None]:
        return list(self.settings.namespaces) or [None]

    def _watched(self) -> tuple[resources.Resource, ...]:
        if not self.settings.watch.enabled:
            return ()
        return (
            resources.ALL if self.settings.watch.all_resources else (resources.EPHEMERAL_RUNNERS,)
        )

    def _poll(self, stop: threading.Event | None = None) -> PollResult | None:
        """A poll cycle; at start-up (`stop` given) it waits until it is applied."""
        wait = None if stop is not None else self.settings.interval_seconds
        writer = self.parts.writer
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
        except Exception:  # a bug must not stop the daemon; it is logged in full
            log.exception("poll cycle crashed, retrying at the next tick")
        else:
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

    def start(self, stop: threading.Event) -> bool:
        """Reconcile, then start watching and polling; False if stopped before."""
        if self.parts.keeper:
            self.parts.keeper.start()
        initial = self._reconcile_at_start(stop)
        if initial is None:
            return False
        tuning = WatchTuning(read_timeout_seconds=self.settings.watch.read_timeout_seconds)
        self.watchers = [
            Watcher(
                source=self.parts.kube,
                intake=self.parts.intake,
                liveness=self.parts.applier.watches,
                resource=resource,
                namespace=scope,
                stats=self.parts.stats,
                tuning=tuning,
                resume_from=initial.versions.get(stream_name(resource.plural, scope)),
            )
            for resource in self._watched()
            for scope in self._scopes()
        ]
        for watcher in self.watchers:
            watcher.start()
        self.schedule.start()
        log.info(
            "daemon started interval_s=%s watches=%s finalizer_capture=%s",
            self.settings.interval_seconds,
            [w.name_ for w in self.watchers],
            self.parts.keeper is not None,
        )
        return True

    def supervise(self, stop: threading.Event) -> None:
        """Wait for the stop request; a watch or writer thread that died is a crash."""
        while not stop.wait(1.0):
            dead = [w.name_ for w in self.watchers if not w.is_alive()]
            if not self.parts.writer.is_alive():
                dead.append("writer")
            if dead:
                raise RuntimeError(f"thread died: {dead}")

    def shutdown(self) -> None:
        """Stop producers, commit what is pending and, in finalizer mode, record the
        final states and release every runner."""
        log.info("stopping: committing pending observations")
        for watcher in self.watchers:
            watcher.stop()
        for watcher in self.watchers:
            watcher.join(timeout=30)
        self.schedule.shutdown()  # waits for a running cycle
        keeper = self.parts.keeper
        if keeper is not None:
            self._poll()  # the last states of runners waiting on our finalizer
        self.parts.writer.close()
        if keeper is not None:
            keeper.close()
            try:
                released = release_all(self.parts.kube, self._scopes())
            except KubeError as e:
                log.error(
                    "could not release finalizers, run `snapshotter finalizers remove` error=%s", e
                )
            else:
                log.info("released finalizers runners=%d", released)
