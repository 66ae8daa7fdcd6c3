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
  committed by the killed one), with and without finalizer capture;
- API server restart: kube-apiserver stopped and started again in the middle of the
  load (every other restart after an etcd compaction, so that the watch's
  resourceVersion is gone: 410, relist): jobs completed, recorded, lost, recorded
  twice, and from the API server answering again (any HTTP answer) until the runner
  watch is live again (the daemon's `relisted` line for the runner stream). With
  `--before COMMIT` each restart runs twice, with that commit's daemon (installed in
  a venv of its own) and with this tree's, same rate and seed.

    .venv/bin/python bench/faults.py --outages 10,30,60,120 --kills 10
    .venv/bin/python bench/faults.py --outages "" --kills 0 --apiserver-restarts 3 \
        --before c9e7551^
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import urllib3
import yaml
from sqlalchemy import text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from snapshotter.clock import monotonic, utc_now  # noqa: E402
from snapshotter.db import engine as db_engine  # noqa: E402
from snapshotter.db import migrate  # noqa: E402
from snapshotter.sync.finalizers import FINALIZER  # noqa: E402
from tests.support.apiserver import TestCluster, built_binaries, start_cluster  # noqa: E402
from tests.support.arc_sim import API, FinishedRunner, SimulatedArc  # noqa: E402
from tests.support.daemon_process import SNAPSHOTTER, DaemonProcess  # noqa: E402
from tests.support.db_rows import rows  # noqa: E402
from tests.support.load import SteadyLoad  # noqa: E402
from tests.support.postgres import PostgresServer, find_bindir  # noqa: E402
from tests.support.previous_version import installed_version  # noqa: E402
from tests.support.rest import JSON, Rest, RestError  # noqa: E402

POLICY = REPO / "config" / "deploy" / "finalizer-capture-policy.yaml"
_names = iter(range(1_000_000))
RESTART_AFTER_SECONDS = 10.0  # of load before each API server restart
RESTART_LOAD_SECONDS = 40.0
STOP_GRACE_SECONDS = 5.0  # SIGTERM, then SIGKILL
NOT_SERVED = "the server could not find the requested resource"  # a CRD not served yet


@dataclass(frozen=True)
class Daemon:
    """Which snapshotter a stage runs: this tree's, or an earlier commit's."""

    label: str
    executable: Path
    env: Mapping[str, str]
    source: Path  # where its `snapshotter` package must come from
    migrate_first: bool  # else the daemon migrates its fresh database itself

    def check(self) -> str:
        """The package the daemon's interpreter imports, which must be `source`'s."""
        python = self.executable.parent / "python"
        found = subprocess.run(
            [str(python), "-P", "-c", "import snapshotter; print(snapshotter.__file__)"],
            env=daemon_env(self.env),
            cwd="/",  # as the console script: no working directory on sys.path
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not Path(found).is_relative_to(self.source):
            raise RuntimeError(f"{self.label}: imports {found}, not from {self.source}")
        return found


def daemon_env(extra: Mapping[str, str]) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, **extra}


def this_tree() -> Daemon:
    """This tree's code, whatever the venv's editable install points at."""
    return Daemon("after", SNAPSHOTTER, {"PYTHONPATH": str(REPO)}, REPO, migrate_first=True)


def earlier(commit: str) -> Daemon:
    full, executable = installed_version(commit)
    source = executable.parents[2] / "src"
    return Daemon(f"before ({full[:7]})", executable, {}, source, migrate_first=False)


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
    """Every run row's workload (by name only: an earlier version's schema has fewer
    columns)."""
    query = text("SELECT workload_uid FROM github_workflow_runs ORDER BY id")
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


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

    def __init__(
        self,
        cluster: TestCluster,
        pg_bindir: Path,
        work: Path,
        *,
        daemon: Daemon,
        rest: Rest | None = None,
        **settings: Any,
    ) -> None:
        self.namespace = f"faults-{next(_names)}"
        cluster.create_namespace(self.namespace)
        self.sim = SimulatedArc(rest or cluster.rest(pool_size=128), self.namespace)
        self.ers = self.sim.create_ephemeral_runner_set(self.sim.create_runner_set("pool"))
        self.pg = PostgresServer(pg_bindir)
        self.pg.start()
        self.engine = db_engine.make_engine(self.pg.create_database("snapshotter"))
        if daemon.migrate_first:
            migrate.upgrade(self.engine)
        directory = Path(tempfile.mkdtemp(prefix=f"{self.namespace}-", dir=work))
        self.daemon = DaemonProcess(
            cluster,
            self.namespace,
            self.engine,
            directory,
            executable=daemon.executable,
            interval_seconds=10,
            **settings,
        )
        inherited = {k: v for k, v in self.daemon.env.items() if k != "PYTHONPATH"}
        self.daemon.env = {**inherited, **daemon.env}

    def start(self) -> None:
        self.daemon.start()
        if until(self.daemon.started, 120) is None:
            raise RuntimeError(f"the daemon did not start, see {self.daemon.log}")

    def close(self) -> None:
        self.daemon.kill()
        self.engine.dispose()
        self.pg.stop()


def outage(cluster: TestCluster, pg_bindir: Path, work: Path, seconds: float) -> Scenario:
    stage = Stage(cluster, pg_bindir, work, daemon=this_tree())
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


class PatientRest(Rest):
    """The simulated ARC's client while the API server restarts: like ARC's
    controllers it tries again (no answer, 429/5xx, a CRD path not served yet)."""

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | list[Any] | None = None,
        *,
        content_type: str = JSON,
        params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        deadline = monotonic() + 180
        while True:
            try:
                return super().request(method, path, body, content_type=content_type, params=params)
            except urllib3.exceptions.HTTPError:
                if monotonic() > deadline:
                    raise
            except RestError as e:
                passing = e.status in {429, 500, 502, 503, 504} or (
                    e.status == 404 and NOT_SERVED in e.body
                )
                if not passing or monotonic() > deadline:
                    raise
            wait(0.1)


@dataclass
class Restart:
    down_at: datetime  # told to stop
    answered_at: datetime  # first HTTP answer again (any status)
    ready_at: datetime  # /readyz 200
    served_at: datetime | None  # runners listed from its watch cache (resourceVersion=0)


def restart_apiserver(cluster: TestCluster, runners: str) -> Restart:
    """Stop kube-apiserver (SIGTERM, SIGKILL after STOP_GRACE_SECONDS) and start it
    again, watching it come back; `runners`: the runner collection to list."""
    if cluster.apiserver is None:
        raise RuntimeError("kube-apiserver is not running")
    down_at = utc_now()
    cluster.apiserver.terminate()
    try:  # its graceful shutdown can wait a minute for open connections
        cluster.apiserver.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        cluster.apiserver.kill()
        cluster.apiserver.wait()
    seen: dict[str, datetime] = {}
    stop = threading.Event()

    def probe() -> None:
        http = urllib3.PoolManager(
            ca_certs=str(cluster.ca_file), timeout=urllib3.Timeout(1), retries=False
        )
        headers = {"Authorization": f"Bearer {cluster.tokens['admin']}"}
        while not stop.is_set() and "served" not in seen:
            url = f"{cluster.server}{runners}?limit=1&resourceVersion=0"
            try:
                response = http.request("GET", url, headers=headers)
            except urllib3.exceptions.HTTPError:
                pass
            else:
                seen.setdefault("answered", utc_now())
                if response.status == 200:
                    seen["served"] = utc_now()
            stop.wait(0.05)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    cluster.start_apiserver()
    ready_at = utc_now()
    prober.join(60)
    stop.set()
    return Restart(down_at, seen.get("answered", ready_at), ready_at, seen.get("served"))


def apiserver_restart(
    cluster: TestCluster,
    pg_bindir: Path,
    work: Path,
    daemon: Daemon,
    *,
    rate: float,
    compaction: bool,
    seed: int,
) -> Scenario:
    rest = PatientRest(cluster.server, cluster.tokens["admin"], str(cluster.ca_file), pool_size=128)
    stage = Stage(cluster, pg_bindir, work, daemon=daemon, rest=rest)
    try:
        stage.start()
        load = SteadyLoad(
            stage.sim, stage.ers, rate=rate, seconds=RESTART_LOAD_SECONDS, seed=seed
        ).start()
        wait(RESTART_AFTER_SECONDS)
        if compaction:
            cluster.compact_etcd()
        restart = restart_apiserver(cluster, f"{API}/namespaces/{stage.namespace}/ephemeralrunners")
        done = load.results()
        until(lambda: {d.uid for d in done} <= set(recorded(stage.engine)), 15)
        kind = "API server restart" + (" + etcd compaction" if compaction else "")
        scenario = count(f"{kind}, {daemon.label}", done, recorded(stage.engine))
        scenario.extra = {"rate": rate, "seed": seed, **timings(stage, restart, done)}
        return scenario
    finally:
        stage.close()
        rest.close()


def timings(stage: Stage, restart: Restart, done: list[FinishedRunner]) -> dict[str, Any]:
    """How the restart went, from the API server's side and the daemon's (its log)."""
    stream = f"stream=ephemeralrunners/{stage.namespace} "
    relists = stage.daemon.log_times(f"relisted {stream}")
    live = next((t for t in relists if t >= restart.answered_at), None)
    failures = stage.daemon.log_times(f"watch failed, retrying {stream}")
    served = restart.served_at
    return {
        "stopped_s": seconds(restart.down_at, restart.answered_at),
        "ready_after_answer_s": seconds(restart.answered_at, restart.ready_at),
        "runners_served_after_answer_s": seconds(restart.answered_at, served) if served else None,
        "watch_live_after_answer_s": seconds(restart.answered_at, live) if live else None,
        "watch_live_after_served_s": seconds(served, live) if live and served else None,
        "runner_watch_retries": sum(t >= restart.down_at for t in failures),
        "jobs_ended_before_watch_live": (
            sum(bool(d.finished_at and restart.down_at <= d.finished_at <= live) for d in done)
            if live
            else None
        ),
    }


def seconds(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds(), 2)


def restarts(
    cluster: TestCluster, pg_bindir: Path, work: Path, args: argparse.Namespace
) -> list[Scenario]:
    """`args.apiserver_restarts` rounds of two restarts (plain, then after an etcd
    compaction), each with every daemon in turn, same seed."""
    daemons = [this_tree()] if not args.before else [earlier(args.before), this_tree()]
    for daemon in daemons:
        print(json.dumps({"daemon": daemon.label, "imports": daemon.check()}), flush=True)
    results = []
    for round_ in range(args.apiserver_restarts):
        for compaction in (False, True):
            for daemon in daemons:
                results.append(
                    apiserver_restart(
                        cluster,
                        pg_bindir,
                        work,
                        daemon,
                        rate=args.restart_rate,
                        compaction=compaction,
                        seed=10 + 2 * round_ + compaction,
                    )
                )
                print(json.dumps(vars(results[-1])), flush=True)
    return results


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
    settings: dict[str, Any] = {"finalizer_capture": {"enabled": True}} if capture else {}
    stage = Stage(cluster, pg_bindir, work, daemon=this_tree(), **settings)
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


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outages", default="10,30,60,120", help="outage lengths (s)")
    parser.add_argument("--kills", type=int, default=10, help="kill -9 rounds per scenario")
    parser.add_argument(
        "--apiserver-restarts",
        type=int,
        default=0,
        help="rounds of two API server restarts (plain, after an etcd compaction)",
    )
    parser.add_argument("--restart-rate", type=float, default=6.0, help="jobs/s during them")
    parser.add_argument(
        "--before", help="also run the restarts with this commit's daemon (e.g. c9e7551^)"
    )
    return parser.parse_args(argv)


def main() -> int:
    args = arguments()
    bindir, pg_bindir = built_binaries(), find_bindir()
    if bindir is None or pg_bindir is None:
        print("run `make test` (or hack/setup.sh) first: binaries missing", file=sys.stderr)
        return 1
    work = REPO / ".bench"
    work.mkdir(exist_ok=True)
    print(json.dumps({"daemon": "after", "imports": this_tree().check()}), flush=True)
    cluster = start_cluster(bindir)
    results: list[Scenario] = []
    try:
        for seconds in (float(s) for s in args.outages.split(",") if s):
            results.append(outage(cluster, pg_bindir, work, seconds))
            print(json.dumps(vars(results[-1])), flush=True)
        if args.kills:
            for capture in (False, True):
                results.append(kills(cluster, pg_bindir, work, args.kills, capture=capture))
                print(json.dumps(vars(results[-1])), flush=True)
        if args.apiserver_restarts:
            results.extend(restarts(cluster, pg_bindir, work, args))
    finally:
        cluster.stop()
    print(json.dumps({"args": vars(args), "results": [vars(r) for r in results]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
