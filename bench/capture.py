"""Capture benchmark: how many finished jobs the snapshotter records, and how fast.

A simulated ARC (tests/support/arc_sim.py) completes jobs at a steady rate on a real
kube-apiserver + etcd; runner lifetimes are uniform in [--min-life, --max-life]
seconds and each runner is deleted the moment its job ends (ARC 0.14). The
snapshotter runs as its own process against a PostgreSQL server started here, once
with the watch (as built) and once with `watch.enabled: false` (poll only, same
interval). Reported per mode:

- capture: run rows recorded / jobs completed, after a grace period of two intervals;
- latency: job end (the runner's DELETE) -> commit of its run row, taken from
  PostgreSQL's own commit timestamps (track_commit_timestamp), p50/p95/p99/max;
- the daemon's CPU time (user+sys, from /proc) per 1000 jobs.

    .venv/bin/python bench/capture.py --rate 20 --seconds 60
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from snapshotter.clock import monotonic  # noqa: E402
from snapshotter.db import engine as db_engine  # noqa: E402
from snapshotter.db import migrate  # noqa: E402
from tests.support.apiserver import TestCluster, built_binaries, start_cluster  # noqa: E402
from tests.support.arc_sim import FinishedRunner, Job, SimulatedArc  # noqa: E402
from tests.support.postgres import PostgresServer, find_bindir  # noqa: E402

SNAPSHOTTER = REPO / ".venv" / "bin" / "snapshotter"


@dataclass
class ModeResult:
    mode: str
    jobs: int
    captured: int
    latencies: list[float]
    cpu_seconds: float

    def summary(self) -> dict[str, Any]:
        def pct(p: float) -> float:
            if not self.latencies:
                return float("nan")
            ordered = sorted(self.latencies)
            return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

        return {
            "mode": self.mode,
            "jobs": self.jobs,
            "captured": self.captured,
            "capture_pct": round(100 * self.captured / self.jobs, 2) if self.jobs else 0.0,
            "latency_p50_s": round(pct(50), 3),
            "latency_p95_s": round(pct(95), 3),
            "latency_p99_s": round(pct(99), 3),
            "latency_max_s": round(max(self.latencies, default=float("nan")), 3),
            "latency_mean_s": round(statistics.fmean(self.latencies), 3)
            if self.latencies
            else float("nan"),
            "daemon_cpu_s_per_1000_jobs": round(1000 * self.cpu_seconds / self.jobs, 2)
            if self.jobs
            else 0.0,
        }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def run_load(
    sim: SimulatedArc,
    ers: dict[str, Any],
    *,
    rate: float,
    seconds: float,
    lifetimes: tuple[float, float],
    seed: int,
) -> list[FinishedRunner]:
    """Start one job every 1/rate s; each ends (runner deleted) after its lifetime."""
    rng = random.Random(seed)
    count = int(rate * seconds)
    tick = threading.Event()
    with ThreadPoolExecutor(max_workers=int(rate * lifetimes[1] * 3) + 8) as pool:
        started = monotonic()
        futures = []
        for i in range(count):
            delay = started + i / rate - monotonic()
            if delay > 0:
                tick.wait(delay)
            futures.append(
                pool.submit(
                    sim.run_job,
                    ers,
                    Job.new(display_name=f"job {i}"),
                    lifetime=rng.uniform(*lifetimes),
                )
            )
        return [f.result() for f in futures]


def commit_latencies(engine: Any, done: list[FinishedRunner]) -> list[float]:
    ended = {d.uid: d.finished_at for d in done}
    with engine.connect() as conn:
        result = conn.execute(
            text(
                "SELECT workload_uid, pg_xact_commit_timestamp(xmin) AS committed "
                "FROM github_workflow_runs"
            )
        )
        committed: dict[str, datetime] = {r.workload_uid: r.committed for r in result}
    return [
        (committed[uid] - end).total_seconds()
        for uid, end in ended.items()
        if uid in committed and end is not None
    ]


def run_mode(
    mode: str, cluster: TestCluster, pg: PostgresServer, args: argparse.Namespace, work: Path
) -> ModeResult:
    namespace = f"bench-{mode}"
    cluster.create_namespace(namespace)
    url = pg.create_database(f"bench_{mode.replace('-', '_')}")
    engine = db_engine.make_engine(url)
    migrate.upgrade(engine)
    sim = SimulatedArc(cluster.rest(pool_size=128), namespace)
    ers = sim.create_ephemeral_runner_set(sim.create_runner_set("pool"))
    config = work / f"{mode}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "interval_seconds": args.interval,
                "namespaces": [namespace],
                "kubernetes": {"kubeconfig": str(cluster.kubeconfig())},
                "watch": {"enabled": mode == "watch"},
                "workflow_configs": [{"name": "all-jobs", "runner_set_name": ""}],
                "logging": {"level": "WARNING"},
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSHOTTER_")}
    env["SNAPSHOTTER_DATABASE__URL"] = url
    with (work / f"{mode}.log").open("w") as log:
        daemon = subprocess.Popen([str(SNAPSHOTTER), "--config", str(config)], env=env, stderr=log)
    try:
        _wait_ready(engine)
        cpu_before = cpu_seconds(daemon.pid)
        done = run_load(
            sim,
            ers,
            rate=args.rate,
            seconds=args.seconds,
            lifetimes=(args.min_life, args.max_life),
            seed=args.seed,
        )
        threading.Event().wait(2 * args.interval + 5)  # the poll's chances, in both modes
        cpu = cpu_seconds(daemon.pid) - cpu_before
    finally:
        daemon.terminate()
        daemon.wait(timeout=120)
    latencies = commit_latencies(engine, done)
    engine.dispose()
    return ModeResult(mode, len(done), len(latencies), latencies, cpu)


def _wait_ready(engine: Any) -> None:
    deadline = monotonic() + 120
    while monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(text("SELECT count(*) FROM github_runner_sets")).scalar():
                return
        threading.Event().wait(0.2)
    raise TimeoutError("the snapshotter did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20.0, help="job completions per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="duration of the load")
    parser.add_argument("--min-life", type=float, default=0.05, help="shortest runner life (s)")
    parser.add_argument("--max-life", type=float, default=2.0, help="longest runner life (s)")
    parser.add_argument("--interval", type=float, default=10.0, help="poll interval (s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--modes", default="watch,poll-only")
    args = parser.parse_args()
    bindir, pg_bindir = built_binaries(), find_bindir()
    if bindir is None or pg_bindir is None:
        print("run `make test` (or hack/setup.sh) first: binaries missing", file=sys.stderr)
        return 1
    work = REPO / ".bench"
    work.mkdir(exist_ok=True)
    pg = PostgresServer(pg_bindir, settings={"track_commit_timestamp": "on"})
    pg.start()
    cluster = start_cluster(bindir)
    try:
        results = [run_mode(m, cluster, pg, args, work).summary() for m in args.modes.split(",")]
    finally:
        cluster.stop()
        pg.stop()
    print(json.dumps({"args": vars(args), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
