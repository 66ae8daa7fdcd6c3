"""Fault benchmark: database outages of growing length, and kill -9 rounds, under load.

A real kube-apiserver + etcd with the ARC CRDs, a PostgreSQL server of its own per
scenario, the simulated ARC completing jobs at a steady rate (runners living
0.05-2 s, deleted the moment their job ends), and the snapshotter as its own process
with its default settings. Reported per scenario:

- outage: PostgreSQL stopped for N s in the middle of the load: jobs completed,
  recorded, lost, recorded twice, and the recovery time (from the database coming
  back until every job that ended during the outage is recorded);
- kill: the daemon killed with SIGKILL at random moments and restarted: jobs lost
  beyond those no daemon could know (ended before the next start-up list, not
  committed by the killed one), with and without finalizer capture.

    .venv/bin/python bench/faults.py --outages 10,30,60,120 --kills 10
"""

import argparse
import json
import random
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from snapshotter.clock import monotonic, utc_now  # noqa: E402
from snapshotter.db import engine as db_engine  # noqa: E402
from snapshotter.db import migrate  # noqa: E402
from snapshotter.sync.finalizers import FINALIZER  # noqa: E402
from tests.support.apiserver import TestCluster, built_binaries, start_cluster  # noqa: E402
from tests.support.arc_sim import FinishedRunner, SimulatedArc  # noqa: E402
from tests.support.daemon_process import DaemonProcess  # noqa: E402
from tests.support.db_rows import rows  # noqa: E402
from tests.support.load import SteadyLoad  # noqa: E402
from tests.support.postgres import PostgresServer, find_bindir  # noqa: E402

POLICY = REPO / "config" / "deploy" / "finalizer-capture-policy.yaml"
_names = iter(range(1_000_000))


@dataclass
class Scenario:
    name: str
    jobs: int = 0
    recorded: int = 0
    lost: int = 0
    twice: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def wait(seconds: float) -> None:
    threading.Event().wait(seconds)


def recorded(engine: Any) -> list[str]:
    return [r["workload_uid"] for r in rows(engine, "github_workflow_runs")]


def until(check: Any, timeout: float) -> datetime | None:
    """When `check()` first held (None: not within `timeout` seconds)."""
    started = monotonic()
    while monotonic() - started < timeout:
        if check():
            return utc_now()
        wait(0.2)
    return None


class Stage:
    """One namespace, pool, database and daemon for one scenario."""

    def __init__(self, cluster: TestCluster, pg_bindir: Path, work: Path, **settings: Any) -> None:
        self.namespace = f"faults-{next(_names)}"
        cluster.create_namespace(self.namespace)
        self.sim = SimulatedArc(cluster.rest(pool_size=128), self.namespace)
        self.ers = self.sim.create_ephemeral_runner_set(self.sim.create_runner_set("pool"))
        self.pg = PostgresServer(pg_bindir)
        self.pg.start()
        self.engine = db_engine.make_engine(self.pg.create_database("snapshotter"))
        migrate.upgrade(self.engine)
        directory = Path(tempfile.mkdtemp(prefix=f"{self.namespace}-", dir=work))
        self.daemon = DaemonProcess(
            cluster, self.namespace, self.engine, directory, interval_seconds=10, **settings
        )

    def start(self) -> None:
        self.daemon.start()
        if until(self.daemon.started, 120) is None:
            raise RuntimeError(f"the daemon did not start, see {self.daemon.log}")

    def close(self) -> None:
        self.daemon.kill()
        self.engine.dispose()
        self.pg.stop()


def outage(cluster: TestCluster, pg_bindir: Path, work: Path, seconds: float) -> Scenario:
    stage = Stage(cluster, pg_bindir, work)
    try:
        stage.start()
        load = SteadyLoad(stage.sim, stage.ers, rate=20, seconds=seconds + 20, seed=1).start()
        wait(10)
        stage.engine.dispose()
        stage.pg.pause()
        down_at = utc_now()
        wait(seconds)
        stage.pg.resume()
        back_at = utc_now()
        caught_up = until(
            lambda: (
                {d.uid for d in ended(stage.sim, down_at, back_at)} <= set(recorded(stage.engine))
            ),
            300,
        )
        during = ended(stage.sim, down_at, back_at)
        done = load.results()
        until(lambda: {d.uid for d in done} <= set(recorded(stage.engine)), 120)
        scenario = count(f"outage {seconds:g} s", done, recorded(stage.engine))
        scenario.extra = {
            "ended_during_outage": len(during),
            "recovery_s": round((caught_up - back_at).total_seconds(), 2) if caught_up else None,
            "queue_overflowed": "pending queue full" in stage.daemon.log.read_text(),
        }
        return scenario
    finally:
        stage.close()


def ended(sim: SimulatedArc, start: datetime, end: datetime) -> list[FinishedRunner]:
    """Jobs of the running load that ended between `start` and `end`."""
    return [r for r in list(sim.finished) if r.finished_at and start <= r.finished_at <= end]


def count(name: str, done: list[FinishedRunner], uids: list[str]) -> Scenario:
    unique = set(uids)
    return Scenario(
        name=name,
        jobs=len(done),
        recorded=len(unique),
        lost=sum(d.uid not in unique for d in done),
        twice=len(uids) - len(unique),
    )


def kills(
    cluster: TestCluster, pg_bindir: Path, work: Path, rounds: int, *, capture: bool
) -> Scenario:
    settings = {"finalizer_capture": {"enabled": True}} if capture else {}
    stage = Stage(cluster, pg_bindir, work, **settings)
    if capture:
        hold_new_runners(cluster, stage)
    try:
        stage.start()
        load = SteadyLoad(stage.sim, stage.ers, rate=8, seconds=rounds * 4.5, seed=2).start()
        rng = random.Random(rounds)
        unknowable: list[tuple[set[str], datetime]] = []
        for _ in range(rounds):
            wait(rng.uniform(1.0, 4.0))
            stage.daemon.kill()
            committed = {
                s["uid"]
                for s in rows(stage.engine, "github_ephemeral_runner_states")
                if s["job_id"]
            }
            wait(rng.uniform(0.2, 2.0))
            stage.start()
            unknowable.append((committed, stage.daemon.log_times("cycle done")[-1]))
        done = load.results()
        until(lambda: len(set(recorded(stage.engine))) >= len(done), 60)
        name = f"kill -9 x{rounds}" + (" (finalizer capture)" if capture else "")
        scenario = count(name, done, recorded(stage.engine))
        allowed = {
            d.uid
            for d in done
            for committed, listed_at in unknowable
            if d.uid not in committed and d.finished_at and d.finished_at <= listed_at
        }
        lost = {d.uid for d in done} - set(recorded(stage.engine))
        scenario.extra = {
            "lost_beyond_unknowable": len(lost - allowed),
            "unknowable": len(allowed & {d.uid for d in done}),
        }
        return scenario
    finally:
        if capture:
            cluster.delete_manifest(POLICY)
        stage.close()


def hold_new_runners(cluster: TestCluster, stage: Stage) -> None:
    """The shipped admission policy, bound to this stage's namespace: runners carry
    our finalizer from their creation."""
    cluster.apply_manifest(REPO / "config" / "deploy" / "rbac-finalizer-capture.yaml")
    binding = next(
        d
        for d in yaml.safe_load_all(POLICY.read_text())
        if d["kind"] == "MutatingAdmissionPolicyBinding"
    )
    selector = {"matchLabels": {"kubernetes.io/metadata.name": stage.namespace}}
    spec = {**binding["spec"], "matchResources": {"namespaceSelector": selector}}
    cluster.apply_manifest(POLICY, {"MutatingAdmissionPolicyBinding": {"spec": spec}})

    def in_force() -> bool:
        created = stage.sim.create_runner(stage.ers, dry_run=True)
        return FINALIZER in created["metadata"]["finalizers"]

    if until(in_force, 60) is None:
        raise RuntimeError("the admission policy did not take effect")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outages", default="10,30,60,120", help="outage lengths (s)")
    parser.add_argument("--kills", type=int, default=10, help="kill -9 rounds per scenario")
    args = parser.parse_args()
    bindir, pg_bindir = built_binaries(), find_bindir()
    if bindir is None or pg_bindir is None:
        print("run `make test` (or hack/setup.sh) first: binaries missing", file=sys.stderr)
        return 1
    work = REPO / ".bench"
    work.mkdir(exist_ok=True)
    cluster = start_cluster(bindir)
    results = []
    try:
        for seconds in (float(s) for s in args.outages.split(",") if s):
            results.append(outage(cluster, pg_bindir, work, seconds))
            print(json.dumps(vars(results[-1])), flush=True)
        if args.kills:
            for capture in (False, True):
                results.append(kills(cluster, pg_bindir, work, args.kills, capture=capture))
                print(json.dumps(vars(results[-1])), flush=True)
    finally:
        cluster.stop()
    print(json.dumps({"args": vars(args), "results": [vars(r) for r in results]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
