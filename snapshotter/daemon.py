"""Wiring: builds the adapters from Settings, then runs `--once` or the daemon.

`run(settings, stop_event)` is the one documented way to embed the snapshotter in
another Python process: it returns when `stop_event` is set, after the running cycle
has finished and been committed. Start-up failures raise StartupError.
"""

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
from snapshotter.sync.applier import Applier, ApplyResult
from snapshotter.sync.cycle import poll_once
from snapshotter.sync.writer import SerialWriter

log = logging.getLogger(__name__)

T = TypeVar("T")
STARTUP_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Components:
    store: Store
    kube: KubeClient
    applier: Applier


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
    engine = db_engine.make_engine(url)
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
    store = Store(engine, cluster_name=settings.cluster_name, namespaces=settings.namespaces)
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


@contextmanager
def components(settings: Settings, stop: threading.Event) -> Iterator[Components]:
    store = open_store(settings, stop)
    try:
        kube = open_kube(settings, stop)
    except BaseException:
        store.engine.dispose()
        raise
    applier = Applier(store, cluster_name=settings.cluster_name, clock=utc_now)
    try:
        applier.load()
        yield Components(store, kube, applier)
    finally:
        kube.close()
        store.engine.dispose()


def reconcile_once(settings: Settings) -> ApplyResult:
    """One full reconciliation (`--once`). Raises KubeError/StoreError if it fails."""
    with components(settings, threading.Event()) as parts:
        return poll_once(parts.kube, parts.applier, namespaces=settings.namespaces)


def run(settings: Settings, stop_event: threading.Event) -> None:
    """Run the daemon until `stop_event` is set."""
    with components(settings, stop_event) as parts:
        writer = SerialWriter(parts.applier)

        def poll_job() -> None:
            try:
                poll_once(parts.kube, writer, namespaces=settings.namespaces)
            except SnapshotterError as e:
                log.error("poll cycle failed, retrying at the next tick error=%s", e)  # noqa: TRY400
            except Exception:  # a bug must not stop the daemon; it is logged in full
                log.exception("poll cycle crashed, retrying at the next tick")

        schedule = PollSchedule(poll_job, interval_seconds=settings.interval_seconds)
        schedule.start()
        log.info("daemon started interval_s=%s", settings.interval_seconds)
        try:
            stop_event.wait()
        finally:
            log.info("stopping: finishing the current cycle")
            schedule.shutdown()
            writer.close()
    log.info("stopped")
