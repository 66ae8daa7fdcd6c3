"""Database outages while runners finish (SPEC §7): observations are held, merged per
object, and written as soon as the database answers again.

- PostgreSQL stopped for 60 s while the simulated ARC completes 20 jobs a second,
  with the default settings: every job is recorded, once.
- The same with a pending-object cap far too small for the outage: the daemon
  falls back to relisting, and the only jobs it loses are those whose runners were
  born after the queue filled and gone before the relist.
- PostgreSQL frozen (SIGSTOP: sockets open, no answer) past the database timeout:
  an outage, not a hang; everything is written once it thaws.
"""

import os
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.support.apiserver import TestCluster
from tests.support.arc_sim import FinishedRunner, SimulatedArc
from tests.support.daemon_process import DaemonProcess
from tests.support.db_rows import rows
from tests.support.load import SteadyLoad
from tests.support.postgres import PostgresServer
from tests.support.waiting import eventually


@pytest.fixture
def start_daemon(
    kube: TestCluster, namespace: str, own_engine: Engine, tmp_path: Path
) -> Iterator[Callable[..., DaemonProcess]]:
    """Start the daemon (default settings, but for `settings`) on the outage database."""
    started: list[DaemonProcess] = []

    def start(**settings: Any) -> DaemonProcess:
        daemon = DaemonProcess(
            kube, namespace, own_engine, tmp_path, interval_seconds=10, **settings
        )
        daemon.start()
        started.append(daemon)
        eventually(daemon.started)
        return daemon

    yield start
    for daemon in started:
        daemon.kill()


def threading_wait(seconds: float) -> None:
    threading.Event().wait(seconds)


def recorded(engine: Engine) -> list[str]:
    return [r["workload_uid"] for r in rows(engine, "github_workflow_runs")]


def all_recorded_once(engine: Engine, done: list[FinishedRunner]) -> bool:
    uids = recorded(engine)
    assert len(uids) == len(set(uids)), "a job recorded twice"
    return {d.uid for d in done} <= set(uids)


@pytest.mark.timeout(600)
def test_a_20_s_outage_at_20_jobs_per_second_loses_nothing(
    sim: SimulatedArc,
    ers: dict[str, Any],
    own_postgres: PostgresServer,
    own_engine: Engine,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = start_daemon()
    # the short version of `make bench-faults` (outages of 10-120 s)
    load = SteadyLoad(sim, ers, rate=20, seconds=40).start()
    threading_wait(10)
    own_engine.dispose()
    own_postgres.pause()
    threading_wait(20)
    own_postgres.resume()
    done = load.results()
    eventually(lambda: all_recorded_once(own_engine, done), timeout=120)
    assert len(recorded(own_engine)) == len(done) == 800
    log = daemon.log.read_text()
    assert "database unavailable" in log
    assert "database reachable again" in log
    assert "pending queue full" not in log


@pytest.mark.timeout(600)
def test_past_the_object_cap_the_relist_loses_only_what_it_must(
    sim: SimulatedArc,
    ers: dict[str, Any],
    own_postgres: PostgresServer,
    own_engine: Engine,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = start_daemon(writer={"max_pending_objects": 100})
    load = SteadyLoad(sim, ers, rate=20, seconds=40, seed=2).start()
    threading_wait(5)
    own_engine.dispose()
    own_postgres.pause()
    threading_wait(20)  # 20 jobs/s: the 100-object cap fills in about 5 s
    own_postgres.resume()
    done = load.results()
    eventually(lambda: len(recorded(own_engine)) >= len(done) * 0.5, timeout=120)
    threading_wait(5)  # the relist and what follows
    full = daemon.log_times("pending queue full")
    assert full, "the cap was never reached"
    relisted = [t for t in daemon.log_times("relisted stream=ephemeralrunners") if t > full[0]]
    uids = set(recorded(own_engine))
    assert len(uids) == len(recorded(own_engine))
    lost = {d.uid for d in done if d.uid not in uids}
    # allowed: runners whose job started after the queue filled and that were gone
    # before the relist. The watch stops at the first event the full queue refuses,
    # so nothing of such a job reaches the daemon; a runner created a moment before
    # (its ADDED queued) may still get its job after that.
    slack = timedelta(seconds=1)
    stopped, relist = full[0] - slack, relisted[0] + slack
    allowed = {
        d.uid
        for d in done
        if stopped <= (d.job_started_at or d.created_at) and (d.finished_at or relist) <= relist
    }
    assert lost <= allowed, "\n".join(
        f"{d.uid}: created {(d.created_at - full[0]).total_seconds():+.2f} s and job started "
        f"{((d.job_started_at or d.created_at) - full[0]).total_seconds():+.2f} s from the "
        f"queue filling, finished {((d.finished_at or relist) - relisted[0]).total_seconds():+.2f}"
        " s from the relist"
        for d in done
        if d.uid in lost - allowed
    )
    assert len(uids) > len(done) / 2


def postgres_processes(server: PostgresServer) -> list[int]:
    """The postmaster and every backend of one test server."""
    postmaster = int((server.datadir / "postmaster.pid").read_text().split()[0])
    children = [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and _parent(p) == postmaster
    ]
    return [postmaster, *children]


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


@pytest.mark.timeout(300)
def test_a_frozen_database_is_an_outage_not_a_hang(
    sim: SimulatedArc,
    ers: dict[str, Any],
    own_postgres: PostgresServer,
    own_engine: Engine,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = start_daemon(database={"timeout_seconds": 3})
    load = SteadyLoad(sim, ers, rate=5, seconds=25).start()
    threading_wait(3)
    frozen = postgres_processes(own_postgres)
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    threading_wait(15)  # longer than the 6 s limit on a database call
    for pid in frozen:
        os.kill(pid, signal.SIGCONT)
    done = load.results()
    eventually(lambda: all_recorded_once(own_engine, done), timeout=120)
    log = daemon.log.read_text()
    assert "no answer from the database within 6s" in log
    assert "database reachable again" in log
