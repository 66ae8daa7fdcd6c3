"""Model-based test of the sync engine under every interleaving (SPEC §4.4, §7).

A hypothesis state machine drives a model cluster (tests/support/cluster_model.py)
and the real engine on a real PostgreSQL database with random sequences of: runner
lifecycle steps, watch events delivered in order, replayed from an older point or
skipped (a gap, then a relist), poll lists taken at one moment and handed over
later, database outages, commits, and restarts (a new daemon on the same database,
losing what it held in memory). After every step it checks the invariants of a
trustworthy history; at the end it settles (database up, a relist, everything
applied) and compares the tables with the model:

- no fact moves backwards (job fields, job_assigned_at, completion, deletion);
- a run row is written once and never rewritten; job_assigned_at <= completed_at;
- no recorded job is lost: every job the engine was shown (and did not lose in a
  crash before committing) ends with its run row once its runner is gone;
- live runners, their phase and job, and the pool's counts equal the model's.
"""

import itertools
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, Protocol

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, text

from snapshotter.db import engine as db_engine
from snapshotter.db.store import DeclaredConfig, Store
from snapshotter.kube.client import Page
from snapshotter.kube.resources import ALL, EPHEMERAL_RUNNERS, Resource
from tests.conftest import IN_CI
from tests.support.cluster_model import BASE_TIME, ClusterModel, ModelEvent, Snapshot
from tests.support.db_rows import rows
from tests.support.engine_harness import Harness
from tests.support.memory_source import MemorySource
from tests.support.postgres import PostgresServer

RUNNERS = EPHEMERAL_RUNNERS

FACT_COLUMNS = (
    "job_id",
    "job_request_id",
    "job_repository",
    "job_workflow_ref",
    "job_workflow_run_id",
    "job_display_name",
    "job_assigned_at",
    "completed_at",
    "completion_source",
)
FLAG_COLUMNS = ("is_completed", "is_deleted")
EXAMPLES = int(os.environ.get("INTERLEAVING_EXAMPLES", "200"))
_databases = itertools.count()


class Clock:
    """The wall clock the engine reads; each step of the machine moves it on."""

    def __init__(self) -> None:
        self.now = BASE_TIME + timedelta(hours=1)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += timedelta(seconds=seconds)


class EngineDriver(Protocol):
    """What the machine does to a daemon: the seam between the model and the engine."""

    def start(self, snapshot: Snapshot) -> None:
        """Load the persisted state and apply the start-up list."""

    def deliver(self, event: ModelEvent) -> None:
        """A watch event is received."""

    def set_watch_live(self, live: bool) -> None: ...

    def begin_list(self) -> object:
        """A list starts now; returns what `hand_list` needs to order it."""

    def hand_list(self, token: object, snapshot: Snapshot, *, from_watch: bool) -> None:
        """A complete list (taken when `begin_list` ran) is handed over."""

    def drain(self) -> None:
        """The writer does all the work it can (nothing if the database is down)."""

    def settle(self) -> None:
        """The final flush: everything pending is written (the database is up)."""

    def close(self) -> None: ...


class Outage:
    """A real outage of one database: connections refused and existing ones killed."""

    def __init__(self, server: PostgresServer, database: str) -> None:
        self.admin = db_engine.make_engine(server.url())
        self.database = database
        self.active = False

    def _execute(self, sql: str) -> None:
        with self.admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(sql))

    def begin(self) -> None:
        self._execute(f'ALTER DATABASE "{self.database}" WITH ALLOW_CONNECTIONS false')
        self._execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{self.database}' AND pid <> pg_backend_pid()"
        )
        self.active = True

    def end(self, engine: Engine) -> None:
        self._execute(f'ALTER DATABASE "{self.database}" WITH ALLOW_CONNECTIONS true')
        self.active = False
        engine.dispose()  # the test's own connections were killed too

    def close(self, engine: Engine) -> None:
        if self.active:
            self.end(engine)
        self.admin.dispose()


def arm_commit_failures(engine: Engine) -> None:
    """A trigger that fails the transactions writing runner states while a budget
    lasts (a sequence: its value survives the rollbacks it causes), as a database in
    trouble would: after some statements of the transaction ran, not a data error."""
    with engine.begin() as conn:
        conn.execute(text("CREATE SEQUENCE commit_failures MINVALUE -1000 START 0"))
        conn.execute(
            text(
                "CREATE FUNCTION fail_commit() RETURNS trigger AS $$ BEGIN "
                "IF nextval('commit_failures') < 0 THEN "
                "RAISE EXCEPTION 'injected commit failure' "
                "USING ERRCODE = 'serialization_failure'; "
                "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER fail_commit BEFORE INSERT OR UPDATE ON "
                "github_ephemeral_runner_states FOR EACH ROW EXECUTE FUNCTION fail_commit()"
            )
        )


class SnapshotSource:
    """Serves one snapshot of the model cluster as list pages (the pool and runners),
    every resource at the snapshot's resourceVersion."""

    def __init__(self, cluster: ClusterModel, snapshot: Snapshot) -> None:
        self.source = MemorySource([cluster.ars, cluster.ers, *snapshot.items])
        self.rv = snapshot.rv

    def list_pages(self, resource: Resource, namespace: str | None = None) -> Iterator[Page]:
        self.source.list_version = self.rv - 1
        return self.source.list_pages(resource, namespace)


class Daemon:
    """The engine as the daemon wires it, driven step by step (tests/support)."""

    def __init__(self, engine: Engine, clock: Clock, cluster: ClusterModel) -> None:
        self.cluster = cluster
        # small batches: more transaction boundaries for the interleavings to hit
        self.harness = Harness(engine, clock=clock, batch_max=3, cap=1000)

    def start(self, snapshot: Snapshot) -> None:
        marker = self.harness.hand_list(SnapshotSource(self.cluster, snapshot))
        self.harness.drain()
        assert marker.done.is_set(), "the start-up list was not applied"
        self.set_watch_live(True)

    def deliver(self, event: ModelEvent) -> None:
        self.harness.event(event.type, event.object)

    def set_watch_live(self, live: bool) -> None:
        self.harness.applier.watches.set(RUNNERS.plural, live)

    def begin_list(self) -> object:
        return self.harness.begin_list()

    def hand_list(self, token: object, snapshot: Snapshot, *, from_watch: bool) -> None:
        assert isinstance(token, tuple)
        self.harness.hand_list(
            SnapshotSource(self.cluster, snapshot),
            token=token,
            kinds=(RUNNERS,) if from_watch else ALL,
            from_watch=from_watch,
        )

    def drain(self) -> None:
        self.harness.drain()

    def settle(self) -> None:
        self.harness.drain()
        self.harness.applier.flush(force=True)

    def close(self) -> None:
        self.harness.close()


def make_driver(engine: Engine, clock: Clock, cluster: ClusterModel) -> EngineDriver:
    return Daemon(engine, clock, cluster)


def assert_no_fact_moved(uid: str, before: dict[str, Any], after: dict[str, Any]) -> None:
    for column in FACT_COLUMNS:
        if before[column] is not None:
            assert after[column] == before[column], f"{uid}.{column} moved"
    for column in FLAG_COLUMNS:
        if before[column]:
            assert after[column], f"{uid}.{column} went back to false"


class Interleavings(RuleBasedStateMachine):
    server: PostgresServer
    template: str

    def __init__(self) -> None:
        super().__init__()
        self.database = f"m{next(_databases)}"
        url = self.server.create_database(self.database, template=self.template)
        self.engine = db_engine.make_engine(url)
        Store(self.engine, cluster_name="").upsert_declared_configs(
            [DeclaredConfig(name="all", runner_set_namespace="", runner_set_name="")],
            now=BASE_TIME,
        )
        self.outage = Outage(self.server, self.database)
        arm_commit_failures(self.engine)
        self.clock = Clock()
        self.cluster = ClusterModel()
        self.watch_at = 0  # index into the cluster's event log: next event to deliver
        self.watch_live = True
        self.stalled = False  # the writer is busy or backing off: work waits for it
        self.held: list[tuple[object, Snapshot]] = []  # lists taken, not handed over yet
        self.shown_jobs: set[str] = set()  # jobs shown to the current daemon
        self.forgiven: set[str] = set()  # shown to a daemon that crashed before committing
        self.previous: dict[str, dict[str, Any]] = {}
        self.previous_runs: dict[tuple[int, str], dict[str, Any]] = {}
        self.driver = make_driver(self.engine, self.clock, self.cluster)
        self.driver.start(self.cluster.snapshot())

    @initialize()
    def two_runners_one_busy(self) -> None:
        """Most interleavings need something stored to go wrong with: start there."""
        self.cluster.create()
        busy = self.cluster.create()
        self.cluster.start_job(busy)
        self.watch_delivers(3)

    # -- the cluster ---------------------------------------------------------

    def _live(self) -> list[str]:
        return sorted(self.cluster.runners)

    @rule()
    def create_runner(self) -> None:
        if len(self.cluster.runners) < 3:
            self.cluster.create()

    @precondition(lambda self: self.cluster.runners)
    @rule(data=st.data())
    def start_job(self, data: st.DataObject) -> None:
        idle = [u for u in self._live() if not self.cluster.has_job(u)]
        if idle:
            self.cluster.start_job(data.draw(st.sampled_from(idle)))

    @precondition(lambda self: self.cluster.runners)
    @rule(data=st.data(), phase=st.sampled_from(["Running", "Failed"]))
    def set_phase(self, data: st.DataObject, phase: str) -> None:
        self.cluster.set_phase(data.draw(st.sampled_from(self._live())), phase)

    @precondition(lambda self: self.cluster.runners)
    @rule(data=st.data())
    def start_deletion(self, data: st.DataObject) -> None:
        uid = data.draw(st.sampled_from(self._live()))
        if "deletionTimestamp" not in self.cluster.runners[uid]["metadata"]:
            self.cluster.start_deletion(uid, self.clock())

    @precondition(lambda self: self.cluster.runners)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        self.cluster.delete(data.draw(st.sampled_from(self._live())))

    # -- the watch -----------------------------------------------------------

    def _show(self, objects: list[dict[str, Any]]) -> None:
        for obj in objects:
            if obj.get("status", {}).get("jobId"):
                self.shown_jobs.add(obj["metadata"]["uid"])

    @precondition(lambda self: self.watch_live)
    @rule(n=st.integers(1, 6))
    def watch_delivers(self, n: int) -> None:
        for event in self.cluster.events_after(self.watch_at)[:n]:
            self.clock.tick(0.1)
            self._show([event.object])
            self.driver.deliver(event)
            self.watch_at += 1
        self._writer_keeps_up()

    @precondition(lambda self: self.watch_live)
    @rule()
    def watch_breaks(self) -> None:
        self.watch_live = False
        self.driver.set_watch_live(False)

    @precondition(lambda self: not self.watch_live)
    @rule()
    def watch_resumes(self) -> None:
        self.watch_live = True
        self.driver.set_watch_live(True)

    @precondition(lambda self: self.watch_live and self.watch_at > 0)
    @rule(k=st.integers(1, 4))
    def watch_replays(self, k: int) -> None:
        """A watch resumed from an older resourceVersion delivers events again."""
        self.watch_at = max(0, self.watch_at - k)

    @rule(k=st.integers(1, 6))
    def watch_gap_then_relist(self, k: int) -> None:
        """Events are missed (410 Gone), so the watch relists and goes on from there."""
        self.watch_at = min(len(self.cluster.log), self.watch_at + k)
        token = self.driver.begin_list()
        snapshot = self.cluster.snapshot()
        self._show(snapshot.items)
        self.driver.hand_list(token, snapshot, from_watch=True)
        self.watch_at = len(self.cluster.log)
        self.watch_live = True
        self.driver.set_watch_live(True)
        self._writer_keeps_up()

    # -- the poller, the writer, the database ----------------------------------

    @precondition(lambda self: len(self.held) < 2)
    @rule()
    def poll_lists(self) -> None:
        self.held.append((self.driver.begin_list(), self.cluster.snapshot()))

    @precondition(lambda self: self.held)
    @rule()
    def poll_hands_its_list_over(self) -> None:
        token, snapshot = self.held.pop(0)
        self._show(snapshot.items)
        self.clock.tick()
        self.driver.hand_list(token, snapshot, from_watch=False)
        self._writer_keeps_up()

    def _writer_keeps_up(self) -> None:
        if not self.stalled and not self.outage.active:
            self.driver.drain()

    @rule()
    def writer_stalls(self) -> None:
        self.stalled = True

    @rule()
    def writer_works(self) -> None:
        self.clock.tick()
        self.stalled = False
        self.driver.drain()

    @precondition(lambda self: not self.outage.active)
    @rule()
    def database_goes_down(self) -> None:
        self.outage.begin()

    @precondition(lambda self: not self.outage.active)
    @rule(n=st.integers(1, 3))
    def next_commits_fail(self, n: int) -> None:
        """The next transactions that write runner states fail, midway."""
        with self.engine.begin() as conn:
            conn.execute(text(f"SELECT setval('commit_failures', {-n - 1})"))

    @precondition(lambda self: self.outage.active)
    @rule()
    def database_comes_back(self) -> None:
        self.outage.end(self.engine)
        self.stalled = True  # the writer notices at its next retry

    @precondition(lambda self: not self.outage.active)
    @rule()
    def daemon_restarts(self) -> None:
        """kill -9 and start again: what was not committed is forgotten."""
        self.driver.close()
        committed = {r["uid"] for r in self._runner_rows().values() if r["job_id"]}
        self.forgiven |= self.shown_jobs - committed
        self.shown_jobs = set()
        self.held = []
        self.driver = make_driver(self.engine, self.clock, self.cluster)
        snapshot = self.cluster.snapshot()
        self._show(snapshot.items)
        self.driver.start(snapshot)
        self.watch_at = len(self.cluster.log)
        self.watch_live = True
        self.stalled = False

    # -- invariants ------------------------------------------------------------

    def _runner_rows(self) -> dict[str, dict[str, Any]]:
        return {r["uid"]: r for r in rows(self.engine, "github_ephemeral_runner_states")}

    def _run_rows(self) -> dict[tuple[int, str], dict[str, Any]]:
        runs: dict[tuple[int, str], dict[str, Any]] = {}
        for run in rows(self.engine, "github_workflow_runs"):
            key = (run["config_id"], run["workload_uid"])
            assert key not in runs, f"run row twice: {key}"
            runs[key] = {k: v for k, v in run.items() if k not in ("updated_at",)}
        return runs

    @invariant()
    def history_is_trustworthy(self) -> None:
        if self.outage.active:
            return
        current, runs = self._runner_rows(), self._run_rows()
        for uid, before in self.previous.items():
            assert_no_fact_moved(uid, before, current[uid])
        for key, run in self.previous_runs.items():
            assert runs[key] == run, f"run row {key} rewritten"
        for uid, row in current.items():
            if row["job_assigned_at"] and row["completed_at"]:
                assert row["job_assigned_at"] <= row["completed_at"], f"{uid}: assigned > done"
            if row["is_deleted"] and row["job_id"]:
                assert row["is_completed"], f"{uid}: gone with a job but not finished"
                assert any(k[1] == uid for k in runs), f"{uid}: recorded job without a run"
        self.previous, self.previous_runs = current, runs

    def teardown(self) -> None:
        try:
            if not self.outage.active and self.driver is not None:
                self._settle_and_compare()
        finally:
            self.driver.close()
            self.outage.close(self.engine)
            self.engine.dispose()

    def _settle_and_compare(self) -> None:
        self.driver.drain()
        token = self.driver.begin_list()
        snapshot = self.cluster.snapshot()
        self._show(snapshot.items)
        self.driver.hand_list(token, snapshot, from_watch=True)
        self.driver.settle()
        self.history_is_trustworthy()
        states = self._runner_rows()
        runs = {uid for _, uid in self._run_rows()}
        for uid in self.shown_jobs - self.forgiven:
            if uid in self.cluster.runners:
                assert states[uid]["job_id"] == self.cluster.jobs[uid], f"{uid}: job not stored"
            else:
                assert uid in runs, f"{uid}: a job shown to the daemon was lost"
        live = {uid for uid, row in states.items() if not row["is_deleted"]}
        assert live == set(self.cluster.runners)
        for uid, obj in self.cluster.runners.items():
            status = obj.get("status", {})
            assert states[uid]["phase"] == status.get("phase"), f"{uid}: phase"
            assert states[uid]["job_id"] == status.get("jobId"), f"{uid}: job"
        [pool] = rows(self.engine, "github_runner_sets")
        counted = [
            o for o in self.cluster.runners.values() if "deletionTimestamp" not in o["metadata"]
        ]
        assert pool["current_runners"] == len(counted)
        assert pool["busy_runners"] == sum(bool(o.get("status", {}).get("jobId")) for o in counted)


@pytest.fixture
def machine(postgres: PostgresServer, migrated_template: str) -> type[Interleavings]:
    Interleavings.server = postgres
    Interleavings.template = migrated_template
    return Interleavings


@pytest.mark.timeout(1800)
def test_no_job_lost_or_rewritten_under_any_interleaving(machine: type[Interleavings]) -> None:
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            derandomize=IN_CI,
        ),
    )
