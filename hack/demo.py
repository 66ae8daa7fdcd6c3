"""The main job, end to end on this machine: `make demo`.

Starts a real kube-apiserver + etcd on loopback with the ARC CRDs, loads the sample
ARC objects, lets a simulated ARC run jobs, runs `snapshotter --once` and then the
daemon for a few seconds into an embedded SQLite database, and prints what landed
in each table. Everything is stopped at the end; the database stays in .demo/.
"""

import signal
import sqlite3
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import urllib3
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.apiserver import TestCluster, built_binaries, start_cluster  # noqa: E402
from tests.support.arc_sim import Job, SimulatedArc  # noqa: E402
from tests.support.postgres import free_port  # noqa: E402
from tests.support.samples_loader import load_samples  # noqa: E402

WORK = REPO / ".demo"
SNAPSHOTTER = REPO / ".venv" / "bin" / "snapshotter"
TABLES = {
    "github_runner_sets": "uid, namespace, name, status, github_owner, github_repo, "
    "current_runners AS cur, busy_runners AS busy, desired_runners AS desired",
    "github_ephemeral_runner_states": "name, phase, job_display_name AS job, is_completed AS "
    "done, completion_source AS how, is_deleted AS deleted",
    "github_workflow_runs": "config_id AS cfg, workload_name, github_run_id, head_branch, "
    "workflow_name, completion_source AS how, status",
    "github_runner_set_history": "runner_set_uid, observed_at, current_runners AS cur, "
    "busy_runners AS busy",
}


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def write_config(kubeconfig: Path, metrics_port: int) -> Path:
    config = {
        "cluster_name": "demo",
        "interval_seconds": 1,
        "metrics": {"port": metrics_port, "address": "127.0.0.1"},
        "namespaces": ["arc-runners", "arc-payments"],
        "kubernetes": {"kubeconfig": str(kubeconfig)},
        "database": {"sqlite_path": str(WORK / "snapshotter.db")},
        "workflow_configs": [
            {
                "name": "ci-on-linux",
                "runner_set_namespace": "arc-runners",
                "runner_set_name": "arc-linux-x64",
                "workflow_filter": "ci.yaml",
            }
        ],
    }
    path = WORK / "snapshotter.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def print_tables() -> None:
    with sqlite3.connect(WORK / "snapshotter.db") as db:
        for table, columns in TABLES.items():
            cursor = db.execute(f"SELECT {columns} FROM {table} ORDER BY id")
            names = [d[0] for d in cursor.description]
            found = cursor.fetchall()
            say(f"{table}: {len(found)} rows")
            widths = [
                max(len(str(v)) for v in [n, *(r[i] for r in found)]) for i, n in enumerate(names)
            ]
            for row in [names, *found]:
                print("  " + "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))


def main() -> int:
    bindir = built_binaries()
    if bindir is None:
        print("kube-apiserver/etcd are not built: run hack/testbin/build.sh", file=sys.stderr)
        return 1
    WORK.mkdir(exist_ok=True)
    for old in WORK.glob("snapshotter.db*"):
        old.unlink()
    say("starting kube-apiserver + etcd on 127.0.0.1 and installing the ARC CRDs")
    cluster = start_cluster(bindir)
    try:
        return demo(cluster)
    finally:
        cluster.stop()


def demo(cluster: TestCluster) -> int:
    print(f"    API server {cluster.server}, logs in {cluster.root}")
    say("loading the sample ARC objects (2 runner pools, 3 runners)")
    created = load_samples(cluster.rest())
    sim = SimulatedArc(cluster.rest(pool_size=32), "arc-runners")
    ers = created["ers"]

    say("simulated ARC: 3 runners pick up jobs")
    busy = [
        sim.start_job(
            sim.pod_running(sim.register(sim.create_runner(ers))),
            Job.new(display_name=f"build ({n})"),
        )
        for n in range(3)
    ]
    metrics_port = free_port()
    config = write_config(cluster.kubeconfig(), metrics_port)

    say(f"snapshotter --config {config.relative_to(REPO)} --once")
    once = subprocess.run(
        [str(SNAPSHOTTER), "--config", str(config), "--once", "--log-level", "WARNING"], check=False
    )
    if once.returncode != 0:
        return once.returncode

    say("build (0) ends while no snapshotter runs: ARC deletes its runner")
    sim.delete_runner(busy[0])

    say("snapshotter daemon (polls every 1 s, watches in between): builds 1-2 end,")
    print("    4 test jobs run on runners living 0.3 s, 1 idle runner comes and goes")
    log = WORK / "daemon.log"
    with log.open("w") as out:
        daemon = subprocess.Popen([str(SNAPSHOTTER), "--config", str(config)], stderr=out)
    try:
        wait_for_line(log, "daemon started")
        for runner in busy[1:]:
            sim.delete_runner(runner)
        with ThreadPoolExecutor(max_workers=5) as pool:
            jobs = [
                pool.submit(sim.run_job, ers, Job.new(display_name=f"test ({n})"), lifetime=0.3)
                for n in range(4)
            ]
            jobs.append(pool.submit(sim.idle_runner, ers, lifetime=0.3))
            for job in jobs:
                job.result()
        threading.Event().wait(2)  # a few more cycles
        print_metrics(metrics_port)
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=60)
    print(f"    daemon stopped on SIGTERM, exit code {code} (its log: {log.relative_to(REPO)})")
    print_tables()
    say("how = completion_source: 'phase' = terminal phase seen (the Failed sample);")
    print("    'vanished' = already gone at the daemon's start-up list (build 0);")
    print("    'deleted' = the watch saw the deletion, with the runner's last state.")
    say(f"the database is {(WORK / 'snapshotter.db').relative_to(REPO)}")
    return code


SHOWN_METRICS = (
    "snapshotter_jobs_finished_total",
    "snapshotter_rows_written_total",
    "snapshotter_watch_events_total",
    "snapshotter_apply_latency_seconds_count",
    "snapshotter_apply_latency_seconds_sum",
    "snapshotter_job_duration_seconds_count",
    "snapshotter_queue_pending_objects",
    "snapshotter_leader",
)


def print_metrics(port: int) -> None:
    """A few lines of the daemon's /metrics (the whole page has more)."""
    say(f"curl http://127.0.0.1:{port}/metrics (excerpt), /readyz, /healthz")
    page = urllib3.request("GET", f"http://127.0.0.1:{port}/metrics", timeout=5).data.decode()
    for line in page.splitlines():
        if line.startswith(SHOWN_METRICS):
            print(f"    {line}")
    for probe in ("/readyz", "/healthz"):
        answer = urllib3.request("GET", f"http://127.0.0.1:{port}{probe}", timeout=5)
        print(f"    {probe}: {answer.status} {answer.data.decode().strip()}")


def wait_for_line(log: Path, text: str, timeout: float = 60) -> None:
    pause = threading.Event()
    for _ in range(int(timeout * 10)):
        if text in log.read_text():
            return
        pause.wait(0.1)
    raise TimeoutError(f"{text!r} not in {log}")


if __name__ == "__main__":
    sys.exit(main())
