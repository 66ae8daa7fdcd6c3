"""kill -9 of the daemon at random moments while runners come and go.

A killed daemon loses only what it held in memory: observations not yet committed.
So after ten kills and restarts under churn, every job is recorded exactly once,
except jobs whose runner ended before the next start-up list and whose job the
killed daemon had not committed (born and gone, as far as any daemon could know).
With finalizer capture on, runners wait for the daemon, and not one job is missed.
"""

import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from snapshotter.clock import utc_now
from tests.support.apiserver import TestCluster
from tests.support.arc_sim import FinishedRunner, SimulatedArc
from tests.support.daemon_process import DaemonProcess
from tests.support.db_rows import rows
from tests.support.load import SteadyLoad
from tests.support.waiting import eventually

ROUNDS = 10


@dataclass
class Downtime:
    killed_at: datetime
    committed_jobs: set[str]  # runners whose job was committed when the daemon died
    listed_at: datetime | None = None  # the next daemon's start-up list was applied


def committed_jobs(engine: Engine) -> set[str]:
    return {s["uid"] for s in rows(engine, "github_ephemeral_runner_states") if s["job_id"]}


def kill_and_restart(
    daemon: DaemonProcess, engine: Engine, *, rounds: int, seed: int
) -> list[Downtime]:
    rng = random.Random(seed)
    pause = threading.Event()
    downtimes = []
    for _ in range(rounds):
        pause.wait(rng.uniform(1.0, 4.0))
        daemon.kill()
        down = Downtime(utc_now(), committed_jobs(engine))
        pause.wait(rng.uniform(0.2, 2.0))
        daemon.start()
        eventually(daemon.started)
        down.listed_at = daemon.log_times("cycle done")[-1]
        downtimes.append(down)
    return downtimes


def may_be_missed(job: FinishedRunner, downtimes: list[Downtime]) -> bool:
    """Whether no daemon could have known this job: it ended before a start-up list
    and the daemon killed before that had not committed it."""
    return any(
        job.uid not in d.committed_jobs
        and d.listed_at is not None
        and job.finished_at is not None
        and job.finished_at <= d.listed_at
        and job.created_at <= d.listed_at
        for d in downtimes
    )


@pytest.fixture
def daemon(
    kube: TestCluster, namespace: str, pg_engine: Engine, tmp_path: Path, request: Any
) -> Iterator[DaemonProcess]:
    settings = getattr(request, "param", {})
    process = DaemonProcess(kube, namespace, pg_engine, tmp_path, interval_seconds=10, **settings)
    yield process
    process.kill()


def recorded(engine: Engine) -> list[str]:
    return [r["workload_uid"] for r in rows(engine, "github_workflow_runs")]


def run_rounds(
    sim: SimulatedArc, ers: dict[str, Any], daemon: DaemonProcess, engine: Engine, seed: int
) -> tuple[list[FinishedRunner], list[Downtime]]:
    daemon.start()
    eventually(daemon.started)
    load = SteadyLoad(sim, ers, rate=8, seconds=45, seed=seed).start()
    downtimes = kill_and_restart(daemon, engine, rounds=ROUNDS, seed=seed)
    return load.results(), downtimes


@pytest.mark.timeout(600)
def test_ten_kills_lose_only_what_no_daemon_could_know(
    sim: SimulatedArc, ers: dict[str, Any], daemon: DaemonProcess, pg_engine: Engine
) -> None:
    done, downtimes = run_rounds(sim, ers, daemon, pg_engine, seed=9)
    knowable = {d.uid for d in done if not may_be_missed(d, downtimes)}
    eventually(lambda: knowable <= set(recorded(pg_engine)), timeout=60)
    assert len(recorded(pg_engine)) == len(set(recorded(pg_engine))), "a job recorded twice"
    assert len(downtimes) == ROUNDS
    # not vacuous: the daemon is down about half of the time (a restart takes a few
    # seconds of Python start-up), so a good share of the jobs must still be checked
    assert len(knowable) > len(done) / 3


@pytest.mark.timeout(600)
@pytest.mark.parametrize("daemon", [{"finalizer_capture": {"enabled": True}}], indirect=True)
@pytest.mark.usefixtures("finalizer_rbac", "admission_policy")
def test_ten_kills_with_finalizer_capture_miss_nothing(
    sim: SimulatedArc, ers: dict[str, Any], daemon: DaemonProcess, pg_engine: Engine
) -> None:
    done, _ = run_rounds(sim, ers, daemon, pg_engine, seed=10)
    eventually(lambda: {d.uid for d in done} <= set(recorded(pg_engine)), timeout=60)
    eventually(lambda: not sim.list("ephemeralrunners"))  # every runner released
    assert len(recorded(pg_engine)) == len(set(recorded(pg_engine))) == len(done)
