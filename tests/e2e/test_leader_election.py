"""Two replicas, one writer (SPEC §6): leader election on a real Lease, fencing in the
real database, failover under churn.

Both replicas run as processes with client-go's timings (lease 15 s, renew deadline
10 s, retry 2 s). The database says who leads (`snapshotter_clusters`), each
replica's /metrics says whether it wrote. The leader is killed with SIGKILL (the
standby takes over once the Lease expires), stopped with SIGTERM (it releases the
Lease: handover at once), and paused with SIGSTOP past its Lease (once resumed, it
must not commit anything: its epoch was superseded).
"""

import signal
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from snapshotter.clock import monotonic
from tests.support.apiserver import TestCluster
from tests.support.arc_sim import SimulatedArc
from tests.support.daemon_process import DaemonProcess
from tests.support.db_rows import rows
from tests.support.load import SteadyLoad
from tests.support.postgres import free_port
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
