"""Command line: argv -> Settings -> daemon; exceptions -> exit codes.

    snapshotter [--config FILE] [--once]     run the daemon, or one reconciliation
    snapshotter db upgrade                   create or upgrade the schema
    snapshotter db upgrade --sql             print what the upgrade would run, change nothing
    snapshotter config check                 validate the configuration and print it
    snapshotter finalizers remove            remove our finalizer from every runner

Exit codes: 0 clean stop or successful --once, 1 crash, 2 usage or config error
(argparse's own code), 3 start-up error, 4 a --once reconciliation failed.
"""

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from snapshotter import daemon, logconfig
from snapshotter.db import engine as db_engine
from snapshotter.db import migrate
from snapshotter.errors import ConfigError, ExitCode, KubeError, StartupError, StoreError
from snapshotter.settings import CONFIG_PATH_VARIABLE, Settings, load_settings
from snapshotter.sync.finalizers import FINALIZER
from snapshotter.sync.intake import QueueFull

log = logging.getLogger(__name__)

TABLE_LABELS = {
    "github_runner_sets": "runner sets",
    "github_ephemeral_runner_states": "runner states",
    "github_workflow_runs": "workflow runs",
    "github_runner_set_history": "runner set history",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snapshotter",
        description="Keep the history of ARC runners and jobs in a database.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=os.environ.get(CONFIG_PATH_VARIABLE),
        help=f"YAML configuration file (default: ${CONFIG_PATH_VARIABLE}, else none)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="run one full reconciliation, print what changed and exit",
    )
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-format", choices=["text", "json"])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    db = commands.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade", "current"])
    db.add_argument(
        "--sql",
        action="store_true",
        help="upgrade: print the statements it would run, change nothing (PostgreSQL)",
    )
    config = commands.add_parser("config", help="configuration")
    config.add_argument("action", choices=["check"])
    finalizers = commands.add_parser(
        "finalizers", help="finalizer capture: remove our finalizer from every runner"
    )
    finalizers.add_argument("action", choices=["remove"])
    return parser


def _config_errors(error: ConfigError) -> int:
    for problem in error.problems:
        print(f"config error: {problem}", file=sys.stderr)  # noqa: T201
    return ExitCode.USAGE


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        db_engine.database_url(settings.database.effective_url())  # its syntax, at once
    except ConfigError as e:
        return _config_errors(e)
    logconfig.configure(
        args.log_level or settings.logging.level, args.log_format or settings.logging.format
    )
    try:
        return _dispatch(args, settings)
    except ConfigError as e:
        return _config_errors(e)
    except StartupError as e:
        log.error("cannot start: %s", e)
        return ExitCode.STARTUP
    except Exception:
        log.exception("crashed")
        return ExitCode.CRASH


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "db":
        return _db(args.action, settings, plan_only=args.sql)
    if args.command == "config":
        print(settings.model_dump_json(indent=2))  # noqa: T201 - SecretStr stays masked
        return ExitCode.OK
    if args.command == "finalizers":
        try:
            released = daemon.remove_finalizers(settings)
        except KubeError as e:
            raise StartupError(f"removing finalizers failed: {e}") from e
        print(f"removed finalizer {FINALIZER} from {released} runners")  # noqa: T201
        return ExitCode.OK
    log.info("effective config %s", settings.model_dump_json())
    if args.once:
        return _once(settings)
    return _run_daemon(settings)


def _db(action: str, settings: Settings, *, plan_only: bool = False) -> int:
    engine = db_engine.make_engine(settings.database.effective_url())
    try:
        if action == "upgrade" and plan_only:
            for statement in migrate.planned_upgrade(engine):
                print(f"{statement};\n")  # noqa: T201
        elif action == "upgrade":
            migrate.upgrade(engine)
        revision = migrate.current_revision(engine)
    except StoreError as e:
        raise StartupError(str(e)) from e
    finally:
        engine.dispose()
    state = f"schema revision: {revision or 'none'} (head: {migrate.head_revision()})"
    if plan_only:
        state = f"-- nothing was run; {state}"
    print(state)  # noqa: T201
    return ExitCode.OK


def _once(settings: Settings) -> int:
    try:
        result = daemon.reconcile_once(settings)
    except (KubeError, StoreError, QueueFull) as e:
        log.error("reconciliation failed: %s", e)
        return ExitCode.ONCE_FAILED
    print(format_summary(result, cluster_name=settings.cluster_name))  # noqa: T201
    return ExitCode.OK


def format_summary(result: daemon.OnceResult, *, cluster_name: str) -> str:
    """A short human-readable account of one reconciliation."""
    applied, poll = result.applied, result.poll
    listed = ", ".join(f"{n} {name}" for name, n in poll.listed.items())
    lines = [
        f"reconciled cluster {cluster_name or '(unnamed)'} in {poll.seconds:.2f}s",
        f"  listed: {listed}",
    ]
    if result.skipped:
        lines.append(f"  malformed objects skipped: {result.skipped}")
    if applied.fitted:
        lines.append(f"  values fitted to their columns: {applied.fitted}")
    if applied.rejected:
        lines.append(f"  objects rejected (see snapshotter_rejects): {applied.rejected}")
    writes = dict.fromkeys(TABLE_LABELS, 0)
    for key, n in applied.written.items():
        table = key.split(".", 1)[0]
        if table in writes:
            writes[table] += n
    lines += [f"  {label}: {writes[table]} rows written" for table, label in TABLE_LABELS.items()]
    summary = applied.summary
    lines.append(
        f"  runners finished: {summary.get('runners_completed', 0)} "
        f"(vanished unseen: {summary.get('runners_vanished', 0)}), "
        f"deleted: {summary.get('runners_deleted', 0)}"
    )
    if not applied.rows_written:
        lines.append("  nothing changed")
    return "\n".join(lines)


def _run_daemon(settings: Settings) -> int:
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    daemon.run(settings, stop)
    return ExitCode.OK
