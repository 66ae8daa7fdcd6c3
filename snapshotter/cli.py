"""Command line: argv -> Settings -> daemon; exceptions -> exit codes.

    snapshotter [--config FILE] [--once]     run the daemon, or one reconciliation
    snapshotter --once --retention           ... then delete rows past their retention
    snapshotter db upgrade                   create or upgrade the schema
    snapshotter db upgrade --sql             print what the upgrade would run, change nothing
    snapshotter db current                   print the schema revision
    snapshotter config check                 validate the configuration and print it
    snapshotter finalizers remove            remove our finalizer from every runner

The exit codes (EPILOG) are the contract with whatever runs the command: a
Deployment's restart policy, a CI step, a shell script.
"""

import argparse
import importlib.metadata
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from snapshotter import __version__, assembly, daemon, logconfig
from snapshotter.clock import utc_now
from snapshotter.db import engine as db_engine
from snapshotter.db import migrate
from snapshotter.db.rejects import Reject
from snapshotter.db.store import Store
from snapshotter.errors import ConfigError, ExitCode, KubeError, StartupError, StoreError
from snapshotter.settings import (
    CONFIG_PATH_VARIABLE,
    ENV_PREFIX,
    LOG_FORMATS,
    LOG_LEVELS,
    Settings,
    load_settings,
)
from snapshotter.sync.finalizers import FINALIZER
from snapshotter.sync.intake import QueueFull

log = logging.getLogger(__name__)

DISTRIBUTION = "github-runners-snapshotter"
TABLE_LABELS = {
    "github_runner_sets": "runner sets",
    "github_ephemeral_runner_states": "runner states",
    "github_workflow_runs": "workflow runs",
    "github_runner_set_history": "runner set history",
}
EPILOG = f"""\
environment variables:
  {CONFIG_PATH_VARIABLE:<30}the configuration file when --config is not given
  {ENV_PREFIX + "<SECTION>__<KEY>":<30}any setting, overriding the file: {ENV_PREFIX} + its key,
  {"":<30}nested keys joined by __, e.g. {ENV_PREFIX}DATABASE__URL,
  {"":<30}{ENV_PREFIX}INTERVAL_SECONDS=5, {ENV_PREFIX}LOGGING__LEVEL=debug

exit codes:
  0  clean stop (SIGTERM, SIGINT) or a successful --once
  1  unexpected crash
  2  usage or configuration error (every problem listed, one per line)
  3  start-up error (database or Kubernetes not usable), one line
  4  a --once reconciliation failed
"""
# command -> (its help, {action: its help})
COMMANDS = {
    "db": (
        "database schema",
        {
            "upgrade": "create the schema or upgrade it to the newest revision",
            "current": "print the database's schema revision and the newest one",
        },
    ),
    "config": (
        "configuration",
        {"check": "validate the configuration and print it (secrets masked)"},
    ),
    "finalizers": (
        "finalizer capture",
        {"remove": f"remove the finalizer {FINALIZER} from every runner in scope"},
    ),
    "rejects": (
        "objects the database refused (snapshotter_rejects)",
        {
            "list": "print every refused object not written since, with the database's error",
            "retry": "ask the leader to write them again now (after fixing the cause)",
        },
    ),
}


def version() -> str:
    """The installed distribution's version (the package's own when run from a tree)."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snapshotter",
        description="Keep the history of ARC runners and jobs in a database.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
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
    parser.add_argument(
        "--retention",
        action="store_true",
        help="with --once: then delete the rows older than the retention section allows "
        "(the daemon does it by itself)",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        help="overrides logging.level (any case)",
    )
    parser.add_argument(
        "--log-format", type=str.lower, choices=LOG_FORMATS, help="overrides logging.format"
    )
    _add_commands(parser)
    return parser


def _add_commands(parser: argparse.ArgumentParser) -> None:
    """`COMMAND ACTION`, each documented in `--help` and in `COMMAND --help`."""
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    added: dict[tuple[str, str], argparse.ArgumentParser] = {}
    for name, (command_help, actions) in COMMANDS.items():
        command = commands.add_parser(
            name, help=f"{command_help}: {' | '.join(actions)}", description=command_help
        )
        subcommands = command.add_subparsers(dest="action", metavar="ACTION", required=True)
        for action, action_help in actions.items():
            added[name, action] = subcommands.add_parser(
                action, help=action_help, description=action_help
            )
    added["db", "upgrade"].add_argument(
        "--sql",
        action="store_true",
        help="print the statements the upgrade would run, change nothing (PostgreSQL only)",
    )


def _config_errors(error: ConfigError) -> int:
    for problem in error.problems:
        print(f"config error: {problem}", file=sys.stderr)  # noqa: T201
    return ExitCode.USAGE


def _usage_error(message: str) -> int:
    """A request that cannot be served as asked: one line, as argparse words it."""
    print(f"snapshotter: error: {message}", file=sys.stderr)  # noqa: T201
    return ExitCode.USAGE


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.retention and not args.once:
        return _usage_error("--retention goes with --once (the daemon applies retention itself)")
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
        return _db(args.action, settings, plan_only=getattr(args, "sql", False))
    if args.command == "config":
        print(settings.model_dump_json(indent=2))  # noqa: T201 - SecretStr stays masked
        return ExitCode.OK
    if args.command == "finalizers":
        try:
            released = assembly.remove_finalizers(settings)
        except KubeError as e:
            raise StartupError(f"removing finalizers failed: {e}") from e
        print(f"removed finalizer {FINALIZER} from {released} runners")  # noqa: T201
        return ExitCode.OK
    if args.command == "rejects":
        return _rejects(args.action, settings)
    log.info("effective config %s", settings.model_dump_json())
    if args.once:
        return _once(settings, with_retention=args.retention)
    return _run_daemon(settings)


def _db(action: str, settings: Settings, *, plan_only: bool = False) -> int:
    url = settings.database.effective_url()
    if plan_only and db_engine.is_sqlite(url):
        return _usage_error(
            "db upgrade --sql needs PostgreSQL (database.url): SQLite's schema changes "
            "cannot be rolled back, so they cannot be planned"
        )
    engine = db_engine.make_engine(url)
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


def _rejects(action: str, settings: Settings) -> int:
    """Reads (or flags) the rejects table as it is: never migrates the schema or
    writes the declared configs, as starting the daemon would."""
    timeout = settings.database.timeout_seconds
    engine = db_engine.make_engine(settings.database.effective_url(), timeout_seconds=timeout)
    try:
        revision = migrate.current_revision(engine)
        if revision != migrate.head_revision():
            raise StartupError(
                f"database schema is at {revision or 'nothing'}, not "
                f"{migrate.head_revision()}: run `snapshotter db upgrade` first"
            )
        store = Store(engine, cluster_name=settings.cluster_name, timeout=max(5.0, 2 * timeout))
        if action == "retry":
            output = f"retry requested for {store.request_retry(now=utc_now())} rejected objects"
        else:
            output = format_rejects(store.load_rejects())
    except StoreError as e:
        raise StartupError(str(e)) from e
    finally:
        engine.dispose()
    print(output)  # noqa: T201
    return ExitCode.OK


def format_rejects(rejects: Sequence[Reject]) -> str:
    if not rejects:
        return "no rejected objects"
    lines = [f"{len(rejects)} rejected objects:"]
    for r in rejects:
        where = f"{r.namespace}/{r.name}" if r.name else "(no name)"
        retry = ", retry requested" if r.retry_requested else ""
        lines.append(
            f"  {r.resource} {where} uid={r.uid} rv={r.resource_version} "
            f"at {r.rejected_at:%Y-%m-%d %H:%M:%S}{retry}\n    {r.error}"
        )
    return "\n".join(lines)


def _once(settings: Settings, *, with_retention: bool) -> int:
    try:
        result = assembly.reconcile_once(settings, with_retention=with_retention)
    except (KubeError, StoreError, QueueFull) as e:
        log.error("reconciliation failed: %s", e)
        return ExitCode.ONCE_FAILED
    print(format_summary(result, cluster_name=settings.cluster_name))  # noqa: T201
    return ExitCode.OK


def format_summary(result: assembly.OnceResult, *, cluster_name: str) -> str:
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
    for table, n in sorted(result.deleted.items()):
        lines.append(f"  retention: {n} rows deleted from {table}")
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
