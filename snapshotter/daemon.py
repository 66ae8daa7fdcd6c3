"""The running daemon: the writer thread, the poll schedule, the watchers, the
finalizer worker, the HTTP endpoints and, with leader election, the elector, started
in order, supervised and stopped cleanly; leadership changes move the writing duty.

`run(settings, stop_event)` is the one documented way to embed the snapshotter in
another Python process: it returns when `stop_event` is set, after what is pending
has been committed. Start-up failures raise StartupError.
"""

import logging
import threading
from datetime import timedelta

from snapshotter.assembly import Components, components, purger, retention_policy
from snapshotter.clock import utc_now
from snapshotter.errors import (
    KubeError,
    SnapshotterError,
    StartupError,
)
from snapshotter.kube import resources
from snapshotter.kube.lease import LeaseClient
from snapshotter.ops.endpoints import Endpoints
from snapshotter.ops.health import Health, HealthLimits
from snapshotter.ops.leader import Elector, Timing
from snapshotter.scheduler import PollSchedule
from snapshotter.settings import Settings
from snapshotter.sync.applier import stream_name
from snapshotter.sync.backoff import Backoff
from snapshotter.sync.cycle import PollResult, poll_once
from snapshotter.sync.finalizers import release_all
from snapshotter.sync.retention import RetentionWorker
from snapshotter.sync.watcher import Watcher, WatchTuning

log = logging.getLogger(__name__)


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
            # nobody recorded) until the database shows that another replica took
            # over, and runners stay held by the finalizer.
            log.warning("keeping every pending observation as a standby reason=%s", cut_off)
            self.parts.writer.follow(keep=None, once_superseded=self._standby_memory())
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
