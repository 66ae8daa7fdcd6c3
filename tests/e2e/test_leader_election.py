"""Two replicas, one writer (SPEC §6): leader election on a real Lease, fencing in the
real database, failover under churn.

Both replicas run as processes with client-go's timings (lease 15 s, renew deadline
10 s, retry 2 s). The database says who leads (`snapshotter_clusters`), each
replica's /metrics says whether it wrote. The leader is killed with SIGKILL (the
standby takes over once the Lease expires), stopped with SIGTERM (it releases the
Lease: handover at once), and paused with SIGSTOP past its Lease (once resumed, it
must not commit anything: its epoch was superseded).

Leadership follows the ability to write (SPEC §4.7): with one database role per
replica, the leader's role is locked out while both still reach the API server; the
leader gives the Lease up and the replica that can write takes over (short Lease
timings keep the test brief).
"""

import itertools
import signal
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from snapshotter.clock import monotonic, utc_now
from tests.support.apiserver import TestCluster
from tests.support.arc_sim import SimulatedArc
from tests.support.daemon_process import DaemonProcess
from tests.support.db_rows import rows
from tests.support.load import SteadyLoad
from tests.support.postgres import free_port
from tests.support.rest import RestError
from tests.support.waiting import eventually

LEASE = 15.0


def metric(replica: DaemonProcess, name: str) -> float:
    status, body = replica.get("/metrics")
    if status != 200:
        return float("nan")
    return sum(
        s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name == name
    )


def leader_row(engine: Engine) -> dict[str, Any]:
    clusters = rows(engine, "snapshotter_clusters")
    return clusters[0] if clusters else {"leader": None, "leader_since": None}


class Replicas:
    def __init__(self, kube: TestCluster, namespace: str, engine: Engine, tmp_path: Path) -> None:
        self.engine = engine
        self.by_name = {
            name: DaemonProcess(
                kube,
                namespace,
                engine,
                tmp_path,
                name=name,
                env={"POD_NAME": name},
                interval_seconds=5,
                metrics={"port": free_port()},
                # the Lease the shipped Role names (config/deploy/rbac.yaml)
                leader_election={"enabled": True, "namespace": "primus-lens"},
            )
            for name in ("replica-a", "replica-b")
        }

    def leader(self) -> DaemonProcess:
        return self.by_name[leader_row(self.engine)["leader"]]

    def other(self, replica: DaemonProcess) -> DaemonProcess:
        return next(r for r in self.by_name.values() if r is not replica)

    def writes(self, replica: DaemonProcess) -> float:
        return metric(replica, "snapshotter_rows_written_total")

    def took_over(self, replica: DaemonProcess, since: float) -> float:
        """Seconds from `since` until `replica` leads and has written."""
        name = next(n for n, r in self.by_name.items() if r is replica)
        before = self.writes(replica)
        eventually(lambda: leader_row(self.engine)["leader"] == name, timeout=60, every=0.1)
        eventually(lambda: self.writes(replica) > before, timeout=60, every=0.1)
        return monotonic() - since


@pytest.mark.timeout(600)
def test_two_replicas_one_writer_and_failover_under_churn(
    kube: TestCluster,
    namespace: str,
    sim: SimulatedArc,
    ers: dict[str, Any],
    pg_engine: Engine,
    tmp_path: Path,
) -> None:
    replicas = Replicas(kube, namespace, pg_engine, tmp_path)
    for replica in replicas.by_name.values():
        replica.start()
    try:
        eventually(lambda: leader_row(pg_engine)["leader"], timeout=60)
        load = SteadyLoad(sim, ers, rate=4, seconds=120, seed=5).start()
        first = replicas.leader()
        standby = replicas.other(first)
        eventually(lambda: standby.get("/readyz")[0] == 200, timeout=60)
        threading.Event().wait(5)
        assert replicas.writes(standby) == 0  # a standby writes nothing
        assert metric(standby, "snapshotter_leader") == 0
        assert metric(first, "snapshotter_leader") == 1

        killed_at = monotonic()
        first.kill()  # no release: the standby waits for the Lease to expire
        failover = replicas.took_over(standby, killed_at)
        assert failover <= 2 * LEASE

        first.start()  # back as a standby
        eventually(first.started, timeout=60)
        stopped_at = monotonic()
        assert standby.signal(signal.SIGTERM) == 0  # releases the Lease on its way out
        handover = replicas.took_over(first, stopped_at)
        assert handover <= 5

        standby.start()
        eventually(standby.started, timeout=60)
        paused = first
        assert paused.process is not None
        paused.process.send_signal(signal.SIGSTOP)
        paused_at = monotonic()
        takeover = replicas.took_over(standby, paused_at)
        new_epoch_since: datetime = leader_row(pg_engine)["leader_since"]
        paused.process.send_signal(signal.SIGCONT)
        threading.Event().wait(8)  # the resumed replica tries to go on as it was
        last_commit = metric(paused, "snapshotter_last_commit_timestamp_seconds")
        assert last_commit < new_epoch_since.timestamp()  # nothing after the new leader
        assert metric(paused, "snapshotter_leader") == 0

        done = load.results()
        eventually(
            lambda: (
                {d.uid for d in done}
                <= {r["workload_uid"] for r in rows(pg_engine, "github_workflow_runs")}
            ),
            timeout=60,
        )
    finally:
        for replica in replicas.by_name.values():
            replica.kill()
    recorded = [r["workload_uid"] for r in rows(pg_engine, "github_workflow_runs")]
    assert len(recorded) == len(set(recorded)) == len(done)  # none twice, none missed
    print(  # noqa: T201 - the figures for the record
        f"failover after kill -9: {failover:.1f}s, after SIGTERM: {handover:.1f}s, "
        f"after SIGSTOP: {takeover:.1f}s"
    )


@pytest.mark.timeout(180)
def test_a_replica_refused_the_lease_says_so_and_is_not_ready(
    kube: TestCluster, namespace: str, pg_engine: Engine, tmp_path: Path
) -> None:
    """No Role for the Lease in its namespace (a wrong `leader_election.namespace`):
    the replica can never lead, so it warns, counts the refusals and fails /readyz
    instead of looking like a healthy standby."""
    replica = DaemonProcess(
        kube,
        namespace,
        pg_engine,
        tmp_path,
        interval_seconds=5,
        metrics={"port": free_port()},
        leader_election={"enabled": True, "namespace": "default"},  # no Role there
    )
    replica.start()
    try:
        started = monotonic()
        eventually(
            lambda: replica.get("/readyz")[0] == 503 and "Lease" in replica.get("/readyz")[1],
            timeout=90,
        )
        print(f"not ready {monotonic() - started:.0f}s after start")  # noqa: T201
        _status, body = replica.get("/readyz")
        assert "forbidden" in body
        assert metric(replica, "snapshotter_leader_election_errors_total") > 0
        assert metric(replica, "snapshotter_leader") == 0
        warnings = [
            line for line in replica.log.read_text().splitlines() if "cannot use the lease" in line
        ]
        assert warnings
        assert "WARNING" in warnings[0]
        assert len(warnings) <= 2  # once a minute, not every retry period
        assert rows(pg_engine, "github_workflow_runs") == []
    finally:
        replica.kill()


LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/primus-lens/leases/github-runners-snapshotter"
_roles = itertools.count()


def database_role(engine: Engine, name: str) -> str:
    """A role of its own for one replica, with the rights the daemon uses on a migrated
    database (no DDL); returns its URL."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"CREATE ROLE {name} LOGIN"))
        conn.execute(
            text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}")
        )
        conn.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {name}"))
    return engine.url.set(username=name, password=None).render_as_string(hide_password=False)


def cut_off(engine: Engine, role: str) -> None:
    """The role can no longer log in, and its sessions are ended: for that replica the
    database is gone, for every other one it is still there."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"ALTER ROLE {role} NOLOGIN"))
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :role"),
            {"role": role},
        )


def lease_holder(sim: SimulatedArc) -> str:
    try:
        lease = sim.rest.get(LEASE_PATH)
    except RestError as e:
        if e.status == 404:
            return ""
        raise
    holder: str = lease["spec"].get("holderIdentity") or ""
    return holder


def free_the_lease(sim: SimulatedArc) -> None:
    """Delete the Lease an earlier test may have left held, so that the first replica
    started takes it at once."""
    try:
        sim.rest.delete(LEASE_PATH)
    except RestError as e:
        if e.status != 404:
            raise


@pytest.mark.timeout(300)
def test_a_leader_cut_off_from_the_database_hands_the_lease_to_one_that_can_reach_it(
    kube: TestCluster,
    namespace: str,
    sim: SimulatedArc,
    ers: dict[str, Any],
    pg_engine: Engine,
    tmp_path: Path,
) -> None:
    """Each replica logs in as its own role; the leader's role is locked out while the
    API server stays in reach of both. The leader gives up the Lease once the database
    has been out of its reach for `release_when_database_lost_seconds`, the other
    replica leads, and every job, those that ended after the cut included, is
    recorded once. Back in reach of the database, the replica that stepped down
    trims what it held, as a standby does."""
    n = next(_roles)
    roles = {"cut-off": f"cut_off_{n}", "reaching": f"reaching_{n}"}
    free_the_lease(sim)
    replicas = {
        name: DaemonProcess(
            kube,
            namespace,
            pg_engine,
            tmp_path,
            name=name,
            env={
                "POD_NAME": name,
                "SNAPSHOTTER_DATABASE__URL": database_role(pg_engine, role),
            },
            interval_seconds=5,
            metrics={"port": free_port()},
            leader_election={
                "enabled": True,
                "namespace": "primus-lens",
                "lease_duration_seconds": 6,
                "renew_deadline_seconds": 4,
                "retry_period_seconds": 1,
                "release_when_database_lost_seconds": 5,
            },
        )
        for name, role in roles.items()
    }
    leader, standby = replicas["cut-off"], replicas["reaching"]
    try:
        leader.start()  # alone: it takes the Lease
        eventually(lambda: leader_row(pg_engine)["leader"] == "cut-off", timeout=60)
        standby.start()
        eventually(lambda: standby.get("/readyz")[0] == 200, timeout=60)
        load = SteadyLoad(sim, ers, rate=2, seconds=20, seed=7).start()
        threading.Event().wait(5)
        assert lease_holder(sim) == "cut-off"

        cut_off(pg_engine, roles["cut-off"])
        cut_at = utc_now()
        eventually(lambda: lease_holder(sim) == "reaching", timeout=60)
        eventually(lambda: leader_row(pg_engine)["leader"] == "reaching", timeout=60)
        eventually(lambda: metric(standby, "snapshotter_leader") == 1, timeout=30)
        log = standby.log.read_text()
        assert "became leader identity=reaching" in log
        assert "leading epoch=" in log

        # the replica that stepped down says why, and is neither leader nor ready
        keeping = "keeping every pending observation as a standby"
        eventually(lambda: keeping in leader.log.read_text())
        stepped_down = leader.log.read_text()
        assert any(
            "WARNING" in line and "database is out of reach" in line
            for line in stepped_down.splitlines()
            if "giving up the lease identity=cut-off" in line
        )
        assert metric(leader, "snapshotter_leader") == 0
        assert metric(leader, "snapshotter_database_available") == 0
        status, body = leader.get("/readyz")
        assert status == 503
        assert "the database does not answer" in body

        done = load.results()
        after_cut = [d for d in done if d.finished_at is not None and d.finished_at > cut_at]
        assert len(after_cut) >= 10  # most of the load ended after the cut
        eventually(
            lambda: (
                {d.uid for d in done}
                <= {r["workload_uid"] for r in rows(pg_engine, "github_workflow_runs")}
            ),
            timeout=60,
        )

        # back in reach of the database, it sees the successor's epoch and trims like a
        # standby again: what it held since the cut is let go once past its window
        with pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"ALTER ROLE {roles['cut-off']} LOGIN"))
        eventually(lambda: "another replica leads now, trimming" in leader.log.read_text())
        eventually(lambda: metric(leader, "snapshotter_queue_pending_objects") == 0, timeout=90)
        assert lease_holder(sim) == "reaching"  # the cut-off replica never took it back
    finally:
        for replica in replicas.values():
            replica.kill()
    recorded = [r["workload_uid"] for r in rows(pg_engine, "github_workflow_runs")]
    assert len(recorded) == len(set(recorded)) == len(done)  # none twice, none missed
