"""Scale benchmark: 1k, 10k, 50k realistic runners in one daemon.

A real kube-apiserver + etcd with the ARC CRDs and a PostgreSQL server; for each size
N, N ARC 0.14 EphemeralRunners with a full pod template (about 6 KB each as served,
managedFields included) spread over 20 pools, 30 % of them busy (job fields set).
Measured per size, with the snapshotter as its own process:

- bare list: the paginated lists the snapshotter makes (every resource, limit 500,
  gzip-compressed as it asks for them), read but not decoded: the API server's floor
  for any full list;
- cold --once (empty database) and steady --once (nothing changed): wall time, CPU
  (user+sys) and peak RSS of the process;
- steady daemon: poll cycles of an unchanged cluster (watch on): wall time of a cycle
  (from the daemon's `cycle done ... total_ms` lines), CPU per cycle, peak RSS;
- churn: runners' status patched at a fixed event rate while a daemon runs with the
  watch and no poll in the window (interval one hour, after its start-up list): its
  CPU per event beyond its idle CPU, and what it wrote (write amplification).

A small heartbeat write (one ConfigMap patch a second) keeps the API server's watch
cache current, as a busy cluster does: without writes for minutes, compaction drops
the cached snapshots and paginated lists are served from etcd.

    .venv/bin/python bench/scale.py --sizes 1000,10000,50000
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import yaml
from sqlalchemy import text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from snapshotter.clock import monotonic  # noqa: E402
from snapshotter.db import engine as db_engine  # noqa: E402
from snapshotter.db import migrate  # noqa: E402
from snapshotter.kube import resources  # noqa: E402
from tests.support.apiserver import TestCluster, built_binaries, start_cluster  # noqa: E402
from tests.support.arc_sim import Job, SimulatedArc  # noqa: E402
from tests.support.postgres import PostgresServer, find_bindir  # noqa: E402
from tests.support.rest import Rest  # noqa: E402

SNAPSHOTTER = REPO / ".venv" / "bin" / "snapshotter"
API = "/apis/actions.github.com/v1alpha1"
POOLS = 20
BUSY = 0.3


def pod_template(pool: str) -> dict[str, Any]:
    """The runner pod of ARC's gha-runner-scale-set chart in kubernetes mode, roughly."""
    env = [
        {"name": "ACTIONS_RUNNER_CONTAINER_HOOKS", "value": "/home/runner/k8s/index.js"},
        {
            "name": "ACTIONS_RUNNER_POD_NAME",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
        },
        {"name": "ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER", "value": "true"},
        {"name": "RUNNER_WAIT_FOR_DOCKER_IN_SECONDS", "value": "120"},
        {"name": "DOCKER_HOST", "value": "unix:///var/run/docker.sock"},
        {"name": "RUNNER_GRACEFUL_STOP_TIMEOUT", "value": "90"},
        {"name": "HTTP_PROXY", "value": "http://proxy.internal.example:3128"},
        {"name": "HTTPS_PROXY", "value": "http://proxy.internal.example:3128"},
        {"name": "NO_PROXY", "value": "localhost,127.0.0.1,.svc,.cluster.local,10.0.0.0/8"},
    ]
    mounts = [
        {"name": "work", "mountPath": "/home/runner/_work"},
        {"name": "dind-sock", "mountPath": "/var/run"},
        {"name": "hook-template", "mountPath": "/home/runner/pod-templates", "readOnly": True},
    ]
    return {
        "metadata": {"labels": {"app": pool, "team": "platform", "cost-center": "ci-4711"}},
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": f"{pool}-gha-rs-kube-mode",
            "securityContext": {"fsGroup": 1001},
            "initContainers": [
                {
                    "name": "init-dind-externals",
                    "image": "ghcr.io/actions/actions-runner:2.334.0",
                    "command": ["cp", "-r", "/home/runner/externals/.", "/home/runner/tmpDir/"],
                    "volumeMounts": [
                        {"name": "dind-externals", "mountPath": "/home/runner/tmpDir"}
                    ],
                }
            ],
            "containers": [
                {
                    "name": "runner",
                    "image": "ghcr.io/actions/actions-runner:2.334.0",
                    "command": ["/home/runner/run.sh"],
                    "env": env,
                    "volumeMounts": mounts,
                    "resources": {
                        "requests": {"cpu": "2", "memory": "4Gi"},
                        "limits": {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "20Gi"},
                    },
                },
                {
                    "name": "dind",
                    "image": "docker:27.3.1-dind",
                    "args": [
                        "dockerd",
                        "--host=unix:///var/run/docker.sock",
                        "--group=$(DOCKER_GROUP_GID)",
                    ],
                    "env": [{"name": "DOCKER_GROUP_GID", "value": "123"}],
                    "securityContext": {"privileged": True},
                    "volumeMounts": [
                        {"name": "work", "mountPath": "/home/runner/_work"},
                        {"name": "dind-sock", "mountPath": "/var/run"},
                        {"name": "dind-externals", "mountPath": "/home/runner/externals"},
                    ],
                },
            ],
            "volumes": [
                {
                    "name": "work",
                    "ephemeral": {
                        "volumeClaimTemplate": {
                            "spec": {
                                "accessModes": ["ReadWriteOnce"],
                                "storageClassName": "fast-local",
                                "resources": {"requests": {"storage": "50Gi"}},
                            }
                        }
                    },
                },
                {"name": "dind-sock", "emptyDir": {}},
                {"name": "dind-externals", "emptyDir": {}},
                {"name": "hook-template", "configMap": {"name": f"{pool}-hook-template"}},
            ],
            "nodeSelector": {"node-pool": "ci-runners", "kubernetes.io/arch": "amd64"},
            "tolerations": [{"key": "ci-only", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }


class Population:
    """Pools and runners created through the API server, as ARC would."""

    def __init__(self, cluster: TestCluster, namespace: str) -> None:
        self.rest = cluster.rest(pool_size=48)
        self.sim = SimulatedArc(self.rest, namespace)
        self.namespace = namespace
        self.pools: list[dict[str, Any]] = []
        self.runners: list[str] = []  # names

    def create_pools(self) -> None:
        for i in range(POOLS):
            ars = self.sim.create_runner_set(f"pool-{i:02d}")
            self.pools.append(self.sim.create_ephemeral_runner_set(ars))

    def _runner(self, n: int) -> str:
        ers = self.pools[n % POOLS]
        meta = ers["metadata"]
        pool = meta["labels"]["actions.github.com/scale-set-name"]
        spec = {
            "githubConfigUrl": "https://github.com/acme-corp",
            "githubConfigSecret": f"{pool}-github-secret",
            "runnerScaleSetId": 7,
            **pod_template(pool),
        }
        runner = self.sim.create_runner(ers, name=f"{meta['name']}-runner-{n:06d}", spec=spec)
        status: dict[str, Any] = {
            "runnerId": 100000 + n,
            "runnerName": runner["metadata"]["name"],
            "phase": "Running",
            "ready": True,
        }
        if random.Random(n).random() < BUSY:
            status |= Job.new(display_name=f"build ({n % 7})").status("0.14")
        self.sim.patch_status(runner, status)
        return str(runner["metadata"]["name"])

    def grow_to(self, count: int) -> float:
        started = monotonic()
        with ThreadPoolExecutor(max_workers=32) as pool:
            names = list(pool.map(self._runner, range(len(self.runners), count)))
        self.runners.extend(names)
        return monotonic() - started


class _ListMeta(msgspec.Struct):
    continue_: str | None = msgspec.field(default=None, name="continue")


class _Page(msgspec.Struct):
    metadata: _ListMeta


def bare_list(rest: Rest, namespace: str) -> tuple[float, int]:
    """Seconds and bytes of the paginated lists the snapshotter makes (every resource,
    500 a page), read but not decoded beyond the continue token."""
    started, total = monotonic(), 0
    decoder = msgspec.json.Decoder(_Page)
    headers = {**rest.headers, "Accept-Encoding": "gzip"}
    for resource in resources.ALL:
        token = None
        while True:
            params = {"limit": "500"} | ({"continue": token} if token else {})
            url = f"{rest.server}{API}/namespaces/{namespace}/{resource.plural}"
            response = rest.pool.request("GET", url, fields=params, headers=headers)
            total += len(response.data)
            token = decoder.decode(response.data).metadata.continue_
            if not token:
                break
    return monotonic() - started, total


@dataclass
class Run:
    """What a snapshotter process used: wall, CPU (user+sys) and peak RSS (MB)."""

    wall: float
    cpu: float
    rss_mb: float


def run_once(config: Path, env: dict[str, str]) -> Run:
    started = monotonic()
    process = subprocess.Popen(
        [str(SNAPSHOTTER), "--config", str(config), "--once"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(
            f"--once failed: {process.stderr.read().decode() if process.stderr else ''}"
        )
    return Run(monotonic() - started, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    log: Path

    def cycles(self) -> list[tuple[float, float]]:
        """(list_ms, total_ms) of every poll cycle logged so far."""
        found = []
        for line in self.log.read_text().splitlines():
            if "cycle done" in line:
                values = dict(part.split("=", 1) for part in line.split() if "=" in part)
                found.append((float(values["list_ms"]), float(values["total_ms"])))
        return found

    def wait_for_cycles(self, n: int, timeout: float) -> None:
        deadline = monotonic() + timeout
        while len(self.cycles()) < n:
            if monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"no {n} cycles within {timeout}s, see {self.log}")
            threading.Event().wait(0.5)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=120)


def start_daemon(config: Path, env: dict[str, str], log: Path) -> Daemon:
    with log.open("w") as out:
        process = subprocess.Popen([str(SNAPSHOTTER), "--config", str(config)], env=env, stderr=out)
    return Daemon(process, log)


class Heartbeat:
    """One small write a second, so that the API server's watch cache stays current."""

    def __init__(self, rest: Rest, namespace: str) -> None:
        self.rest, self.namespace = rest, namespace
        self.stop = threading.Event()
        rest.post(
            f"/api/v1/namespaces/{namespace}/configmaps",
            {"metadata": {"name": "heartbeat"}, "data": {"n": "0"}},
        )
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n = 0
        while not self.stop.wait(1.0):
            n += 1
            self.rest.merge_patch(
                f"/api/v1/namespaces/{self.namespace}/configmaps/heartbeat", {"data": {"n": str(n)}}
            )


def churn(population: Population, rate: float, seconds: float) -> int:
    """Status patches of random runners at `rate` per second; returns how many."""
    rng = random.Random(9)
    phases = ["Pending", "Running"]
    count = int(rate * seconds)
    tick = threading.Event()
    with ThreadPoolExecutor(max_workers=16) as pool:
        started = monotonic()
        for i in range(count):
            delay = started + i / rate - monotonic()
            if delay > 0:
                tick.wait(delay)
            name = rng.choice(population.runners)
            path = f"{API}/namespaces/{population.namespace}/ephemeralrunners/{name}/status"
            pool.submit(
                population.rest.merge_patch,
                path,
                {"status": {"phase": phases[i % 2], "ready": i % 2 == 1}},
            )
    return count


def written(engine: Any) -> dict[str, int]:
    """Rows inserted + updated per table, from PostgreSQL's own counters."""
    with engine.connect() as conn:
        result = conn.execute(
            text("SELECT relname, n_tup_ins + n_tup_upd AS n FROM pg_stat_user_tables")
        )
        return {r.relname: int(r.n) for r in result}


def history_spacing(engine: Any, since: float) -> tuple[int, float]:
    """History rows written since `since` (epoch seconds), and the shortest time
    between two rows of one pool (inf: no pool got two)."""
    query = text(
        "SELECT count(*) AS n, min(gap) AS gap FROM ("
        " SELECT extract(epoch FROM observed_at - lag(observed_at) OVER"
        "  (PARTITION BY runner_set_uid ORDER BY observed_at)) AS gap"
        " FROM github_runner_set_history WHERE observed_at >= to_timestamp(:since)) AS t"
    )
    with engine.connect() as conn:
        row = conn.execute(query, {"since": since}).one()
    return int(row.n), float(row.gap) if row.gap is not None else float("inf")


@dataclass
class SizeResult:
    runners: int
    bytes_per_runner: int = 0
    populate_s: float = 0.0
    bare_list_s: list[float] = field(default_factory=list)
    cold_once: Run | None = None
    steady_once: Run | None = None
    daemon_cycle_s: list[float] = field(default_factory=list)
    daemon_list_s: list[float] = field(default_factory=list)
    daemon_cpu_per_cycle_s: float = 0.0
    daemon_peak_rss_mb: float = 0.0
    churn: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        bare = statistics.median(self.bare_list_s)
        cycle = statistics.median(self.daemon_cycle_s) if self.daemon_cycle_s else float("nan")
        return {
            "runners": self.runners,
            "bytes_per_runner": self.bytes_per_runner,
            "populate_s": round(self.populate_s, 1),
            "bare_list_s": round(bare, 3),
            "cold_once": _rounded(vars(self.cold_once)) if self.cold_once else None,
            "steady_once": _rounded(vars(self.steady_once)) if self.steady_once else None,
            "daemon_cycle_s": round(cycle, 3),
            "cycle_over_bare_list": round(cycle / bare, 3),
            "daemon_cpu_per_cycle_s": round(self.daemon_cpu_per_cycle_s, 3),
            "daemon_peak_rss_mb": round(self.daemon_peak_rss_mb, 1),
            "churn": self.churn,
        }


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 2) for k, v in values.items()}


def config_file(
    work: Path, cluster: TestCluster, namespace: str, interval: float, history_period: float = 10.0
) -> Path:
    path = work / f"{namespace}-{interval:g}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "interval_seconds": interval,
                "namespaces": [namespace],
                "kubernetes": {"kubeconfig": str(cluster.kubeconfig())},
                "metrics": {"port": 0},
                "workflow_configs": [{"name": "all-jobs", "runner_set_name": ""}],
                "logging": {"level": "INFO"},
                "writer": {"history_period_seconds": history_period},
            }
        )
    )
    return path


def measure_bare_lists(population: Population, result: SizeResult, rounds: int) -> None:
    for _ in range(rounds):
        seconds, size_bytes = bare_list(population.rest, population.namespace)
        result.bare_list_s.append(seconds)
        result.bytes_per_runner = size_bytes // result.runners


def measure_steady_cycles(daemon: Daemon, result: SizeResult, cycles: int, interval: float) -> None:
    daemon.wait_for_cycles(1, 900)  # the start-up reconciliation
    before = cpu_seconds(daemon.process.pid), len(daemon.cycles())
    daemon.wait_for_cycles(before[1] + cycles, 60 + cycles * interval * 3)
    after = cpu_seconds(daemon.process.pid), len(daemon.cycles())
    result.daemon_cpu_per_cycle_s = (after[0] - before[0]) / (after[1] - before[1])
    steady = daemon.cycles()[before[1] : after[1]]
    result.daemon_list_s = [lst / 1000 for lst, _ in steady]
    result.daemon_cycle_s = [total / 1000 for _, total in steady]


def measure_churn(
    daemon: Daemon, population: Population, engine: Any, args: argparse.Namespace
) -> dict[str, Any]:
    pid = daemon.process.pid
    idle_cpu, idle_started = cpu_seconds(pid), monotonic()
    threading.Event().wait(args.churn_seconds)
    idle_rate = (cpu_seconds(pid) - idle_cpu) / (monotonic() - idle_started)
    rows_before, since = written(engine), time.time()
    cpu_before, churn_started = cpu_seconds(pid), monotonic()
    events = churn(population, args.churn_rate, args.churn_seconds)
    threading.Event().wait(3)  # the last events are applied
    churn_wall = monotonic() - churn_started
    cpu = cpu_seconds(pid) - cpu_before
    rows_after = written(engine)
    delta = {t: rows_after.get(t, 0) - rows_before.get(t, 0) for t in rows_after}
    history_rows, history_gap = history_spacing(engine, since)
    cursor_rows = delta.get("snapshotter_sync_cursors", 0)
    return {
        "events": events,
        "rate_per_s": args.churn_rate,
        "cpu_s": round(cpu, 2),
        "idle_cpu_per_s": round(idle_rate, 4),
        "peak_rss_mb": round(peak_rss_mb(pid), 1),
        "cpu_ms_per_event_beyond_idle": round(1000 * (cpu - idle_rate * churn_wall) / events, 3),
        "rows_written": {t: n for t, n in delta.items() if n},
        "runner_rows_per_event": round(delta.get("github_ephemeral_runner_states", 0) / events, 3),
        "history_rows_per_pool": round(history_rows / POOLS, 2),
        "history_min_gap_s": round(history_gap, 2),
        "cursor_rows_per_stream_per_5s": round(
            cursor_rows / len(resources.ALL) / (churn_wall / 5), 2
        ),
    }


def measure(
    size: int,
    population: Population,
    cluster: TestCluster,
    pg: PostgresServer,
    work: Path,
    args: argparse.Namespace,
) -> SizeResult:
    result = SizeResult(size)
    result.populate_s = population.grow_to(size)
    measure_bare_lists(population, result, 3)
    url = pg.create_database(f"scale_{size}_{uuid.uuid4().hex[:6]}")
    engine = db_engine.make_engine(url)
    migrate.upgrade(engine)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSHOTTER_")}
    env["SNAPSHOTTER_DATABASE__URL"] = url
    config = config_file(work, cluster, population.namespace, args.interval)
    result.cold_once = run_once(config, env)
    result.steady_once = run_once(config, env)
    daemon = start_daemon(config, env, work / f"daemon-{size}.log")
    try:
        measure_steady_cycles(daemon, result, args.cycles, args.interval)
        result.daemon_peak_rss_mb = peak_rss_mb(daemon.process.pid)
    finally:
        daemon.stop()
    watcher = start_daemon(
        config_file(work, cluster, population.namespace, 3600.0), env, work / f"churn-{size}.log"
    )
    try:
        watcher.wait_for_cycles(1, 900)  # its start-up list; no other poll within the hour
        result.churn = measure_churn(watcher, population, engine, args)
    finally:
        watcher.stop()
    measure_bare_lists(population, result, 3)  # the same API server state, after the daemon
    engine.dispose()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--cycles", type=int, default=5, help="steady daemon cycles measured")
    parser.add_argument(
        "--interval", type=float, default=10.0, help="the daemon's interval_seconds"
    )
    parser.add_argument("--churn-rate", type=float, default=100.0, help="events per second")
    parser.add_argument("--churn-seconds", type=float, default=30.0)
    args = parser.parse_args()
    bindir, pg_bindir = built_binaries(), find_bindir()
    if bindir is None or pg_bindir is None:
        print("run `make test` (or hack/setup.sh) first: binaries missing", file=sys.stderr)
        return 1
    work = REPO / ".bench"
    work.mkdir(exist_ok=True)
    pg = PostgresServer(pg_bindir, settings={"shared_buffers": "256MB"})
    pg.start()
    cluster = start_cluster(bindir)
    results = []
    try:
        cluster.create_namespace("scale")
        heartbeat = Heartbeat(cluster.rest(), "scale")
        population = Population(cluster, "scale")
        population.create_pools()
        for size in sorted(int(s) for s in args.sizes.split(",")):
            results.append(measure(size, population, cluster, pg, work, args).summary())
            print(json.dumps(results[-1]), flush=True)
        heartbeat.stop.set()
    finally:
        cluster.stop()
        pg.stop()
    print(json.dumps({"args": vars(args), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
