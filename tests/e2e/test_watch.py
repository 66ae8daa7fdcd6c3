"""The supplemental watch against the real API server: nothing finished is missed.

The poll interval is 60 s in these tests and each test ends well before a second
poll, so every run row here was recorded from a watch event (or the start-up
reconciliation); `completion_source == 'deleted'` shows it.
"""

import logging
import random
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.e2e.conftest import running_daemon
from tests.support.apiserver import TestCluster
from tests.support.arc_sim import FinishedRunner, Job, SimulatedArc
from tests.support.db_rows import rows
from tests.support.waiting import eventually

POOL_CONFIG = {"name": "ci", "runner_set_name": "pool", "workflow_filter": "ci.yaml"}
ALL_CONFIG = {"name": "all-jobs", "runner_set_name": ""}
SLOW_POLL = {"interval_seconds": 60, "workflow_configs": [POOL_CONFIG, ALL_CONFIG]}


def runs_of(engine: Engine) -> dict[tuple[int, str], dict[str, Any]]:
    return {(r["config_id"], r["workload_uid"]): r for r in rows(engine, "github_workflow_runs")}


def configs(engine: Engine) -> dict[str, int]:
    return {c["name"]: c["id"] for c in rows(engine, "github_workflow_configs")}


def daemon_ready(engine: Engine) -> bool:
    return bool(rows(engine, "github_runner_sets"))


def assert_every_job_recorded_once(engine: Engine, done: list[FinishedRunner]) -> None:
    runs = runs_of(engine)
    ids = configs(engine)
    assert len(runs) == 2 * len(done)  # one row per matching config, no duplicates
    for finished in done:
        assert finished.job is not None
        for config in ("ci", "all-jobs"):
            run = runs[(ids[config], finished.uid)]
            assert run["workload_name"] == finished.name
            assert run["job_id"] in (finished.job.job_id, None)
            assert run["github_run_id"] == finished.job.run_id
            assert run["workflow_ref"] == finished.job.workflow_ref
            assert run["job_display_name"] == finished.job.display_name
            assert (run["workflow_name"], run["head_branch"]) == ("ci.yaml", "main")


def pool(sim: SimulatedArc) -> dict[str, Any]:
    """A pool and its EphemeralRunnerSet; create it before the daemon starts, so that
    `daemon_ready` (its row is stored) means the start-up reconciliation is done and
    the watches run from the resourceVersion of that list."""
    return sim.create_ephemeral_runner_set(sim.create_runner_set("pool"), replicas=20)


def run_fast_jobs(
    sim: SimulatedArc, make_settings: Any, engine: Engine, *, n: int, seed: int
) -> list[FinishedRunner]:
    """n jobs on runners living 0.05-2 s, 20 at a time, under a daemon polling every 60 s;
    returns once every job has its rows (or fails after 60 s)."""
    ers = pool(sim)
    rng = random.Random(seed)
    jobs = [Job.new(display_name=f"job {i}") for i in range(n)]
    lifetimes = [rng.uniform(0.05, 2.0) for _ in range(n)]
    with running_daemon(make_settings(**SLOW_POLL)):
        eventually(lambda: daemon_ready(engine))
        done = sim.run_jobs(ers, jobs, lifetimes=lifetimes, concurrency=20)
        eventually(lambda: len(runs_of(engine)) >= 2 * len(done), timeout=60)
    assert_every_job_recorded_once(engine, done)
    return done


@pytest.mark.timeout(300)
def test_fast_cycling_runners_arc_014_every_job_once(
    sim: SimulatedArc,
    make_settings: Any,
    pg_engine: Engine,
) -> None:
    run_fast_jobs(sim, make_settings, pg_engine, n=200, seed=14)
    sources = {r["completion_source"] for r in runs_of(pg_engine).values()}
    assert sources == {"deleted"}  # every one seen through the watch, none by a poll


@pytest.mark.timeout(300)
def test_fast_cycling_runners_arc_012_every_job_once(
    sim: SimulatedArc,
    make_settings: Any,
    pg_engine: Engine,
) -> None:
    sim.version = "0.12"  # Succeeded is written before the runner is deleted
    done = run_fast_jobs(sim, make_settings, pg_engine, n=200, seed=12)
    states = {s["uid"]: s for s in rows(pg_engine, "github_ephemeral_runner_states")}
    assert all(states[d.uid]["phase"] == "Succeeded" for d in done)
    # the Succeeded phase usually arrives first; a runner whose Succeeded status and
    # deletion landed in one batch completes as deleted: either way exactly once
    assert {r["completion_source"] for r in runs_of(pg_engine).values()} <= {"phase", "deleted"}


def test_fast_idle_churn_produces_no_run(
    sim: SimulatedArc,
    make_settings: Any,
    pg_engine: Engine,
) -> None:
    ers = pool(sim)
    with running_daemon(make_settings(**SLOW_POLL)):
        eventually(lambda: daemon_ready(pg_engine))
        rng = random.Random(3)
        idle = [sim.idle_runner(ers, lifetime=rng.uniform(0.05, 0.5)) for _ in range(30)]
        eventually(
            lambda: (
                sum(s["is_deleted"] for s in rows(pg_engine, "github_ephemeral_runner_states"))
                == len(idle)
            )
        )
    states = rows(pg_engine, "github_ephemeral_runner_states")
    assert {s["uid"] for s in states} == {r.uid for r in idle}
    assert not any(s["is_completed"] for s in states)
    assert rows(pg_engine, "github_workflow_runs") == []


def start_running_jobs(sim: SimulatedArc, ers: dict[str, Any], n: int) -> list[dict[str, Any]]:
    return [
        sim.start_job(sim.pod_running(sim.register(sim.create_runner(ers))), Job.new())
        for _ in range(n)
    ]


def test_forced_gap_records_each_vanished_job_once(
    sim: SimulatedArc,
    make_settings: Any,
    pg_engine: Engine,
    kube: TestCluster,
) -> None:
    settings = make_settings(**SLOW_POLL)
    ers = pool(sim)
    with running_daemon(settings):
        busy = start_running_jobs(sim, ers, 5)
        eventually(
            lambda: (
                sum(bool(s["job_id"]) for s in rows(pg_engine, "github_ephemeral_runner_states"))
                == 5
            )
        )
    # the daemon is down: the jobs end and ARC deletes their runners
    for runner in busy:
        sim.delete_runner(runner)
    unseen = sim.run_job(ers, lifetime=0)  # born and gone inside the gap
    kube.compact_etcd()  # the stored resourceVersion is history now
    with running_daemon(settings):
        eventually(lambda: len(runs_of(pg_engine)) >= 10)
    with running_daemon(settings):  # and once more: nothing is recorded twice
        eventually(lambda: daemon_ready(pg_engine))
    runs = list(runs_of(pg_engine).values())
    assert sorted(r["workload_uid"] for r in runs) == sorted(
        [r["metadata"]["uid"] for r in busy] * 2
    )
    assert {r["completion_source"] for r in runs} == {"vanished"}
    # without finalizer capture a runner born and gone inside the gap is not seen
    assert unseen.uid not in {s["uid"] for s in rows(pg_engine, "github_ephemeral_runner_states")}


def watching_again(sim: SimulatedArc, ers: dict[str, Any], engine: Engine) -> None:
    """Wait until the watch delivers events again: a probe runner must show up in the
    database long before the 60 s poll could list it."""
    probe = sim.register(sim.create_runner(ers))
    uid = probe["metadata"]["uid"]
    eventually(lambda: any(s["uid"] == uid for s in rows(engine, "github_ephemeral_runner_states")))
    sim.delete_runner(probe)


def test_forced_410_on_a_live_watch_relists_and_loses_nothing(
    sim: SimulatedArc,
    make_settings: Any,
    pg_engine: Engine,
    kube: TestCluster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="snapshotter.sync.watcher")
    ers = pool(sim)
    with running_daemon(make_settings(**SLOW_POLL)):
        eventually(lambda: daemon_ready(pg_engine))
        before = [sim.run_job(ers, lifetime=0.1) for _ in range(3)]
        running = start_running_jobs(sim, ers, 3)
        eventually(lambda: len(runs_of(pg_engine)) == 6)
        kube.compact_etcd()  # compaction while watching, then the watch must reconnect:
        kube.restart_apiserver()  # its new watch cache starts after the watcher's position
        watching_again(sim, ers, pg_engine)
        relists = [r for r in caplog.records if r.getMessage().startswith("watch expired")]
        assert relists, "the watch did not see 410 Gone"
        for runner in running:  # jobs seen before the 410 end after it
            sim.delete_runner(runner)
        after = [sim.run_job(ers, lifetime=0.1) for _ in range(3)]
        eventually(lambda: len(runs_of(pg_engine)) == 18)
    uids = {uid for _, uid in runs_of(pg_engine)}
    assert uids == {d.uid for d in [*before, *after]} | {r["metadata"]["uid"] for r in running}
    sources = {uid: r["completion_source"] for (_, uid), r in runs_of(pg_engine).items()}
    assert {sources[r["metadata"]["uid"]] for r in running} == {"deleted"}


def test_api_server_restart_while_watching_loses_nothing(
    sim: SimulatedArc,
    make_settings: Any,
    pg_engine: Engine,
    kube: TestCluster,
) -> None:
    ers = pool(sim)
    with running_daemon(make_settings(**SLOW_POLL)):
        eventually(lambda: daemon_ready(pg_engine))
        running = start_running_jobs(sim, ers, 4)
        eventually(
            lambda: (
                sum(bool(s["job_id"]) for s in rows(pg_engine, "github_ephemeral_runner_states"))
                == 4
            )
        )
        kube.restart_apiserver()
        watching_again(sim, ers, pg_engine)  # the loop reconnected by itself
        for runner in running:
            sim.delete_runner(runner)
        after = [sim.run_job(ers, lifetime=0.1) for _ in range(4)]
        eventually(lambda: len(runs_of(pg_engine)) == 16)
    completed = {uid for _, uid in runs_of(pg_engine)}
    assert completed == {r["metadata"]["uid"] for r in running} | {d.uid for d in after}
