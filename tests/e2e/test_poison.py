"""Values PostgreSQL cannot store never stop capture (SPEC §7).

Runners carry what the API server accepts and PostgreSQL refuses: strings longer than
their column (phase, reason, a branch in the workflow ref, a sha annotation), an
integer out of range (a run-number annotation), NUL characters. Each value is fitted
to its column and every other job, before, during and after, is recorded; with the
daemon, with `--once`, and after a restart. A row the database refuses for another
reason (here a real trigger) is isolated, recorded in `snapshotter_rejects`, and
everything else commits.
"""

import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from snapshotter.errors import ExitCode
from tests.support.apiserver import TestCluster
from tests.support.arc_sim import FinishedRunner, Job, SimulatedArc
from tests.support.daemon_process import DaemonProcess
from tests.support.db_rows import rows
from tests.support.waiting import eventually

LONG_BRANCH = "feature/" + "b" * 300
POISON: dict[str, dict[str, Any]] = {
    "phase-60-chars": {"status": {"phase": "P" * 60}},
    "reason-300-chars": {"status": {"reason": "R" * 300}},
    "branch-300-chars": {"job": Job.new(ref=f"refs/heads/{LONG_BRANCH}")},
    "sha-100-chars": {"annotations": {"actions.github.com/sha": "a" * 100}},
    "run-number-3e9": {"annotations": {"actions.github.com/run-number": "3000000000"}},
    "nul-characters": {
        "status": {"message": "a\u0000b"},
        "job": Job.new(display_name="test\u0000nul"),
    },
}


def poisoned_job(sim: SimulatedArc, ers: Mapping[str, Any], case: Mapping[str, Any]) -> str:
    """A runner that runs a job while carrying one poisonous value; returns its uid."""
    runner = sim.create_runner(ers, annotations=case.get("annotations"))
    runner = sim.start_job(sim.pod_running(sim.register(runner)), case.get("job") or Job.new())
    if "status" in case:
        runner = sim.patch_status(runner, case["status"])
    sim.delete_runner(runner)
    uid: str = runner["metadata"]["uid"]
    return uid


def normal_jobs(sim: SimulatedArc, ers: Mapping[str, Any], n: int) -> list[FinishedRunner]:
    return [sim.run_job(ers, lifetime=0.05) for _ in range(n)]


def run_uids(engine: Engine) -> list[str]:
    return [r["workload_uid"] for r in rows(engine, "github_workflow_runs")]


def assert_fitted(engine: Engine, uids: Mapping[str, str]) -> None:
    states = {s["uid"]: s for s in rows(engine, "github_ephemeral_runner_states")}
    runs = {r["workload_uid"]: r for r in rows(engine, "github_workflow_runs")}
    assert states[uids["phase-60-chars"]]["phase"] == "P" * 50
    assert states[uids["reason-300-chars"]]["reason"] == "R" * 255
    assert runs[uids["branch-300-chars"]]["head_branch"] == LONG_BRANCH[:255]
    assert runs[uids["sha-100-chars"]]["head_sha"] == "a" * 64
    assert runs[uids["run-number-3e9"]]["github_run_number"] is None
    nul = uids["nul-characters"]
    assert states[nul]["message"] == "ab"
    assert runs[nul]["job_display_name"] == "testnul"


@pytest.fixture
def daemon(
    kube: TestCluster, namespace: str, pg_engine: Engine, tmp_path: Path
) -> Iterator[DaemonProcess]:
    process = DaemonProcess(kube, namespace, pg_engine, tmp_path)
    yield process
    process.kill()


@pytest.mark.timeout(300)
def test_the_daemon_fits_every_poisonous_value_and_misses_no_job(
    sim: SimulatedArc, ers: dict[str, Any], daemon: DaemonProcess, pg_engine: Engine
) -> None:
    daemon.start()
    eventually(daemon.started)
    before = normal_jobs(sim, ers, 4)
    poisoned: dict[str, str] = {}
    for name, case in POISON.items():
        poisoned[name] = poisoned_job(sim, ers, case)
        normal_jobs(sim, ers, 1)
    eventually(lambda: len(run_uids(pg_engine)) == 4 + 2 * len(POISON))
    assert_fitted(pg_engine, poisoned)
    daemon.kill()  # nothing is stuck after a restart either
    daemon.start()
    eventually(daemon.started)
    after = normal_jobs(sim, ers, 4)
    eventually(lambda: {a.uid for a in after} <= set(run_uids(pg_engine)))
    recorded = run_uids(pg_engine)
    assert len(recorded) == len(set(recorded)) == 8 + 2 * len(POISON)
    assert {b.uid for b in before} <= set(recorded)
    assert rows(pg_engine, "snapshotter_rejects") == []
    assert "value fitted to its column" in daemon.log.read_text()


def test_once_fits_every_poisonous_value_and_exits_0(
    sim: SimulatedArc, ers: dict[str, Any], daemon: DaemonProcess, pg_engine: Engine
) -> None:
    live = {}
    for name, case in POISON.items():  # live runners, each with its poison, mid-job
        runner = sim.create_runner(ers, annotations=case.get("annotations"))
        runner = sim.start_job(sim.pod_running(sim.register(runner)), case.get("job") or Job.new())
        if "status" in case:
            runner = sim.patch_status(runner, case["status"])
        live[name] = runner
    result = daemon.command("--once")
    assert result.returncode == ExitCode.OK, result.stderr
    assert "values fitted to their columns:" in result.stdout
    for runner in live.values():  # their jobs end; a second --once records them vanished
        sim.delete_runner(runner)
    result = daemon.command("--once")
    assert result.returncode == ExitCode.OK, result.stderr
    assert_fitted(pg_engine, {name: r["metadata"]["uid"] for name, r in live.items()})
    assert {r["completion_source"] for r in rows(pg_engine, "github_workflow_runs")} == {"vanished"}


def refuse_display_name(engine: Engine, name: str) -> None:
    """A real refusal the fitting cannot prevent: a trigger raising a data exception."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.job_display_name = '{name}' THEN "
                "RAISE EXCEPTION 'refused by policy' USING ERRCODE = 'check_violation'; "
                "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER refuse_poison BEFORE INSERT OR UPDATE ON "
                "github_ephemeral_runner_states FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
            )
        )


@pytest.mark.timeout(300)
def test_a_refused_object_is_isolated_and_recorded_and_the_rest_commits(
    sim: SimulatedArc, ers: dict[str, Any], daemon: DaemonProcess, pg_engine: Engine
) -> None:
    refuse_display_name(pg_engine, "refused")
    daemon.start()
    eventually(daemon.started)
    stop = threading.Event()
    during: list[FinishedRunner] = []

    def churn() -> None:  # normal jobs all along, some sharing batches with the refused one
        while not stop.is_set():
            during.append(sim.run_job(ers, lifetime=0.05))

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        refused = sim.run_job(ers, Job.new(display_name="refused"), lifetime=0.2)
        normal_jobs(sim, ers, 3)
    finally:
        stop.set()
        worker.join()
    eventually(lambda: {d.uid for d in during} <= set(run_uids(pg_engine)))
    rejects = rows(pg_engine, "snapshotter_rejects")
    assert {r["uid"] for r in rejects} == {refused.uid}
    assert all("refused by policy" in r["error"] for r in rejects)
    assert refused.uid not in run_uids(pg_engine)
    daemon.kill()
    daemon.start()  # a restart neither retries the refused versions nor gets stuck
    eventually(daemon.started)
    after = normal_jobs(sim, ers, 3)
    eventually(lambda: {a.uid for a in after} <= set(run_uids(pg_engine)))
    assert len(rows(pg_engine, "snapshotter_rejects")) == len(rejects)
