"""Engine factory: PostgreSQL in production, an embedded SQLite file by default.

Built by the caller (CLI, daemon, tests) and passed down; nothing here runs at import.
On PostgreSQL every connection has bounded waits (SPEC §7): a connect timeout, TCP
keepalives and a TCP user timeout (a dead peer or a black-holed path is noticed),
and server-side statement, lock and idle-in-transaction timeouts. There is no
pre-ping: the writer's own retry covers a stale connection at no round trip.
"""

from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError

from snapshotter.errors import ConfigError

__all__ = ["Engine", "database_url", "is_sqlite", "make_engine", "masked_url"]  # Engine: a type
DEFAULT_TIMEOUT_SECONDS = 30.0
DRIVERS = {"postgresql": "psycopg2", "sqlite": "pysqlite"}  # the drivers this package installs
SECRET_QUERY_KEYS = frozenset({"password", "passfile", "sslpassword"})


def database_url(url: str) -> URL:
    """The URL parsed and checked, with the installed driver made explicit
    (`postgresql://` means psycopg 3 to SQLAlchemy 2.1; this package ships psycopg2).
    Raises ConfigError with messages that never show the password."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as e:
        detail = (
            "the port is not a number" if "port" in str(e) or "int()" in str(e) else "bad syntax"
        )
        raise ConfigError([f"database.url: not a valid database URL ({detail})"]) from e
    backend, driver = parsed.get_backend_name(), parsed.drivername.partition("+")[2]
    if backend not in DRIVERS:
        raise ConfigError([f"database.url: {backend!r} is not supported: use postgresql or sqlite"])
    if driver and driver != DRIVERS[backend]:
        raise ConfigError(
            [
                f"database.url: driver {driver!r} is not installed: "
                f"use {backend}+{DRIVERS[backend]}:// (or {backend}://)"
            ]
        )
    if parsed.host and "@" in parsed.host:
        raise ConfigError(
            ["database.url: the user or password contains '@': percent-encode it as %40"]
        )
    return parsed.set(drivername=f"{backend}+{DRIVERS[backend]}")


def masked_url(url: str) -> str:
    """The URL for logs and errors: password hidden, secret query parameters dropped."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "(unparsable database URL)"
    query = {k: v for k, v in parsed.query.items() if k.lower() not in SECRET_QUERY_KEYS}
    return parsed.set(query=query).render_as_string(hide_password=True)


def is_sqlite(url: str) -> bool:
    return database_url(url).get_backend_name() == "sqlite"


def postgres_connect_args(timeout_seconds: float) -> dict[str, Any]:
    ms = int(timeout_seconds * 1000)
    return {
        "connect_timeout": max(2, int(timeout_seconds / 3)),
        "application_name": "github-runners-snapshotter",
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": ms,
        # TimeZone=UTC: a server or database set west of UTC renders Lens's zero time
        # (0001-01-01 00:00+00) in year 0, which Python's datetime cannot hold
        "options": (
            f"-c statement_timeout={ms} -c lock_timeout={ms} "
            f"-c idle_in_transaction_session_timeout={2 * ms} -c TimeZone=UTC"
        ),
    }


def make_engine(
    url: str, *, echo: bool = False, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
) -> Engine:
    parsed = database_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            parsed,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": timeout_seconds},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(
        parsed,
        echo=echo,
        pool_recycle=1800,
        pool_size=2,
        max_overflow=4,
        pool_timeout=timeout_seconds,
        connect_args=postgres_connect_args(timeout_seconds),
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (a UI, the `--once` summary) read while the daemon writes;
    # busy_timeout turns a brief lock into a wait instead of an error.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
    # pysqlite would begin a transaction only at the first INSERT or UPDATE, so the
    # leader fence's read would run outside the write transaction; `_sqlite_begin`
    # begins it instead, before the first statement.
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Any) -> None:
    # A deferred BEGIN: the fence's read and the writes share one snapshot, and in
    # WAL mode a transaction whose snapshot another writer has changed cannot write
    # any more (SQLITE_BUSY_SNAPSHOT): what the fence read holds until the commit.
    # Readers do not take the write lock (BEGIN IMMEDIATE would block the daemon
    # behind any reader). SQLAlchemy's documented recipe for pysqlite.
    conn.exec_driver_sql("BEGIN")
