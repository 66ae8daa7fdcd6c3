"""Retention and growth benchmark: how fast old rows go, what it costs the writer, and
how many rows and bytes each table gains per day.

On a PostgreSQL server started here, the daemon's own sync engine (store, applier,
pending queue, writer thread) is fed watch events by a synthetic ARC in this process:
`--pools` pools, `--rate` jobs per second, each runner added, given a job and deleted
(three events), with a workflow config matching every job, and pool counts and
history written once per pool per `--history-period`.

- growth: on an empty database, the load runs `--growth-seconds`; the rows and bytes
  (table + indexes, PostgreSQL's own sizes) of every table are extrapolated to a day,
  and to a steady state with and without retention's defaults;
- retention: `--rows` history rows (generate_series; `--old-fraction` of them past
  90 days) are put in another database; the load runs half of `--baseline-seconds`
  without retention, then on while one retention pass deletes the old rows, then the
  other half without. Reported: rows
  deleted per second, and the writer's apply latency (receipt -> commit) p50/p99
  without and during the pass, and their ratio.

    .venv/bin/python bench/retention.py --rows 10000000
"""

import argparse
import json
import statistics
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from snapshotter.clock import monotonic, utc_now  # noqa: E402
from snapshotter.db import engine as db_engine  # noqa: E402
from snapshotter.db import migrate, retention  # noqa: E402
from snapshotter.db.store import DeclaredConfig, Store  # noqa: E402
from snapshotter.kube import resources  # noqa: E402
from snapshotter.ops.stats import SyncStats  # noqa: E402
from snapshotter.sync.applier import Applier  # noqa: E402
from snapshotter.sync.intake import Intake  # noqa: E402
from snapshotter.sync.observations import ParseReport  # noqa: E402
from snapshotter.sync.queue import PendingQueue  # noqa: E402
from snapshotter.sync.retention import Policy, run_pass  # noqa: E402
from snapshotter.sync.writer import Writer  # noqa: E402
from tests.support import arc_objects as arc  # noqa: E402
from tests.support.postgres import PostgresServer, find_bindir  # noqa: E402

TABLES = (
    "github_runner_sets",
    "github_ephemeral_runner_states",
    "github_workflow_runs",
    "github_runner_set_history",
    "snapshotter_rejects",
)
DAY = 86_400.0
FILL_CHUNK = 1_000_000


class RecordingStats(SyncStats):
    """Keeps every apply latency with the monotonic time it was observed."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.samples: list[tuple[float, float]] = []

    def latency(self, seconds: float) -> None:
        super().latency(seconds)
        self.samples.append((monotonic(), seconds))


class Parts:
    """The daemon's writer side, wired as assembly.components does."""

    def __init__(self, engine: Engine, history_period: float) -> None:
        self.store = Store(engine, cluster_name="", timeout=60)
        self.store.upsert_declared_configs(
            [DeclaredConfig(name="all", runner_set_namespace="", runner_set_name="")],
            now=utc_now(),
        )
        self.stats = RecordingStats()
        self.applier = Applier(
            self.store,
            cluster_name="",
            clock=utc_now,
            stats=self.stats,
            history_period=timedelta(seconds=history_period),
        )
        self.applier.load()
        self.queue = PendingQueue(cap=100_000)
        self.intake = Intake(self.queue, self.applier.stored_version, ParseReport(), utc_now)
        self.writer = Writer(self.applier, self.queue, batch_max=500)
        self.writer.start()

    def close(self) -> None:
        self.writer.close()
        self.store.close()


class SyntheticArc:
    """Pools, and runners that get a job and are deleted: three events per job."""

    def __init__(self, parts: Parts, pools: int) -> None:
        self.intake = parts.intake
        self.rv = 1000
        self.sets = []
        for n in range(pools):
            ars = arc.runner_set(name=f"pool-{n}", uid=f"ars-{n}", rv=self._rv())
            ers = arc.ephemeral_runner_set(ars, uid=f"ers-{n}", rv=self._rv(), replicas=1)
            self.intake.event(resources.AUTOSCALING_RUNNER_SETS, "ADDED", ars)
            self.intake.event(resources.EPHEMERAL_RUNNER_SETS, "ADDED", ers)
            self.sets.append(ers)
        self.jobs = 0
        self._pending: list[tuple[dict[str, Any], int]] = []

    def _rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def step(self) -> None:
        """One job starts (added), an earlier one gets its job, an earlier one ends."""
        n = self.jobs
        self.jobs += 1
        ers = self.sets[n % len(self.sets)]
        runner = arc.ephemeral_runner(ers, name=f"runner-{n}", uid=f"er-{n}", rv=self._rv())
        self.intake.event(resources.EPHEMERAL_RUNNERS, "ADDED", runner)
        self._pending.append((runner, 0))
        advanced = []
        for obj, stage in self._pending:
            if stage == 0:
                busy = arc.bumped(arc.with_job(obj), self._rv())
                self.intake.event(resources.EPHEMERAL_RUNNERS, "MODIFIED", busy)
                advanced.append((busy, 1))
            elif stage < 3:
                advanced.append((obj, stage + 1))
            else:
                gone = arc.bumped(obj, self._rv())
                self.intake.event(resources.EPHEMERAL_RUNNERS, "DELETED", gone)
        self._pending = advanced


def run_load(sim: SyntheticArc, rate: float, until: threading.Event | float) -> None:
    """`rate` jobs per second until the event is set or the seconds have passed."""
    start = monotonic()
    n = 0
    while True:
        if isinstance(until, threading.Event):
            if until.is_set():
                return
        elif monotonic() - start >= until:
            return
        sim.step()
        n += 1
        delay = start + n / rate - monotonic()
        if delay > 0:
            threading.Event().wait(delay)


def sizes(engine: Engine) -> dict[str, dict[str, int]]:
    with engine.connect() as conn:
        return {
            t: {
                "rows": conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one(),
                "bytes": conn.execute(text(f"SELECT pg_total_relation_size('{t}')")).scalar_one(),
            }
            for t in TABLES
        }


def growth(pg: PostgresServer, args: argparse.Namespace) -> dict[str, Any]:
    engine = db_engine.make_engine(pg.create_database("bench_growth"))
    migrate.upgrade(engine)
    parts = Parts(engine, args.history_period)
    sim = SyntheticArc(parts, args.pools)
    run_load(sim, args.rate, 5.0)  # warm-up: pools written, first runners
    before, started = sizes(engine), monotonic()
    run_load(sim, args.rate, args.growth_seconds)
    threading.Event().wait(args.history_period + 2)  # the last period's history
    measured = monotonic() - started
    parts.close()
    after = sizes(engine)
    engine.dispose()
    per_day = {}
    for table in TABLES:
        rows = after[table]["rows"] - before[table]["rows"]
        added = after[table]["bytes"] - before[table]["bytes"]
        per_row = added / rows if rows else 0  # whole pages: a rough figure on few rows
        per_day[table] = {
            "rows_measured": rows,
            "bytes_measured": added,
            "rows_per_day": round(rows * DAY / measured),
            "bytes_per_row": round(per_row),
        }
    return {"measured_seconds": round(measured, 1), "per_day": per_day}


def fill_history(engine: Engine, rows: int, old_fraction: float, pools: int) -> float:
    """`rows` history rows, evenly over a span of which `old_fraction` is past 90 days."""
    span_days = 90 / (1 - old_fraction) if old_fraction < 1 else 180
    started = monotonic()
    for first in range(1, rows + 1, FILL_CHUNK):
        last = min(rows, first + FILL_CHUNK - 1)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO github_runner_set_history (cluster_name, runner_set_id, "
                    "runner_set_uid, observed_at, current_runners, busy_runners) "
                    "SELECT '', 1000 + g % :pools, md5((g % :pools)::text)::uuid::text, "
                    "now() - make_interval(secs => :span * (1 - g::float8 / :rows)), g % 7, g % 3 "
                    "FROM generate_series(:first, :last) g"
                ),
                {
                    "pools": pools,
                    "span": span_days * DAY,
                    "rows": rows,
                    "first": first,
                    "last": last,
                },
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE github_runner_set_history"))
        conn.execute(text("CHECKPOINT"))  # the fill's writes are not the pass's cost
    return monotonic() - started


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def latency_summary(samples: list[tuple[float, float]], start: float, end: float) -> dict[str, Any]:
    values = [s for t, s in samples if start <= t <= end]
    return {
        "commits_observed": len(values),
        "p50_ms": round(1000 * pct(values, 50), 1),
        "p99_ms": round(1000 * pct(values, 99), 1),
        "mean_ms": round(1000 * statistics.fmean(values), 1) if values else None,
    }


def retention_run(pg: PostgresServer, args: argparse.Namespace) -> dict[str, Any]:
    engine = db_engine.make_engine(pg.create_database("bench_retention"))
    migrate.upgrade(engine)
    fill_seconds = fill_history(engine, args.rows, args.old_fraction, args.pools)
    before = sizes(engine)["github_runner_set_history"]
    before["bytes_per_row"] = round(before["bytes"] / before["rows"])
    parts = Parts(engine, args.history_period)
    sim = SyntheticArc(parts, args.pools)
    run_load(sim, args.rate, 5.0)  # warm-up
    base_start = monotonic()  # half the baseline before the pass, half after it
    run_load(sim, args.rate, args.baseline_seconds / 2)
    base_end = monotonic()
    purger = retention.Purger(engine, cluster_name="", timeout=60)
    policy = Policy(
        ages={retention.HISTORY.name: timedelta(days=90)},
        batch_size=args.batch_size,
        pause_seconds=args.pause,
    )
    done = threading.Event()
    load = threading.Thread(target=run_load, args=(sim, args.rate, done))
    load.start()
    pass_start = monotonic()
    quiet = (lambda: parts.writer.idle) if args.yield_to_writer else (lambda: True)
    deleted: Counter[str] = run_pass(purger, policy, clock=utc_now, stats=parts.stats, quiet=quiet)
    pass_end = monotonic()
    done.set()
    load.join()
    after_start = monotonic()
    run_load(sim, args.rate, args.baseline_seconds / 2)
    after_end = monotonic()
    parts.close()
    purger.close()
    after = sizes(engine)["github_runner_set_history"]
    engine.dispose()
    outside = [(t, v) for t, v in parts.stats.samples if not pass_start <= t <= pass_end]
    samples = [(t, v) for t, v in outside if base_start <= t <= base_end] + [
        (t, v) for t, v in outside if after_start <= t <= after_end
    ]
    baseline = latency_summary(samples, base_start, after_end)
    during = latency_summary(parts.stats.samples, pass_start, pass_end)
    seconds = pass_end - pass_start
    rows = deleted[retention.HISTORY.name]
    return {
        "fill_seconds": round(fill_seconds, 1),
        "history_before": before,
        "history_after": after,
        "deleted_rows": rows,
        "pass_seconds": round(seconds, 1),
        "deleted_rows_per_second": round(rows / seconds) if seconds else None,
        "apply_latency_without_retention": baseline,
        "apply_latency_during_retention": during,
        "p99_ratio": round(during["p99_ms"] / baseline["p99_ms"], 2)
        if baseline["p99_ms"]
        else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="history rows to start with")
    parser.add_argument("--old-fraction", type=float, default=0.5, help="of them past 90 days")
    parser.add_argument("--pools", type=int, default=20)
    parser.add_argument("--rate", type=float, default=20.0, help="jobs per second")
    parser.add_argument("--history-period", type=float, default=10.0, help="seconds")
    parser.add_argument("--baseline-seconds", type=float, default=60.0)
    parser.add_argument("--growth-seconds", type=float, default=120.0)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between batches")
    parser.add_argument(
        "--no-yield",
        dest="yield_to_writer",
        action="store_false",
        help="start batches without waiting for the writer to be idle",
    )
    parser.add_argument("--skip", choices=("growth", "retention"), help="leave one part out")
    args = parser.parse_args()
    pg_bindir = find_bindir()
    if pg_bindir is None:
        print("run `make test` (or hack/setup.sh) first: PostgreSQL missing", file=sys.stderr)
        return 1
    pg = PostgresServer(pg_bindir, settings={"shared_buffers": "256MB"})
    pg.start()
    report: dict[str, Any] = {"args": vars(args)}
    try:
        if args.skip != "growth":
            report["growth"] = growth(pg, args)
        if args.skip != "retention":
            report["retention"] = retention_run(pg, args)
    finally:
        pg.stop()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
