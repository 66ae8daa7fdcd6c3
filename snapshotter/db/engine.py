"""Engine factory: PostgreSQL in production, an embedded SQLite file by default.

Built by the caller (CLI, daemon, tests) and passed down; nothing here runs at import.
On PostgreSQL every connection has bounded waits (SPEC §7): a connect timeout, TCP
keepalives and a TCP user timeout (a dead peer or a black-holed path is noticed),
and server-side statement, lock and idle-in-transaction timeouts. There is no
pre-ping: the writer's own retry covers a stale connection at no round trip.
"""

from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url

DEFAULT_TIMEOUT_SECONDS = 30.0


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


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
        "options": (
            f"-c statement_timeout={ms} -c lock_timeout={ms} "
            f"-c idle_in_transaction_session_timeout={2 * ms}"
        ),
    }


def make_engine(
    url: str, *, echo: bool = False, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
) -> Engine:
    if is_sqlite(url):
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": timeout_seconds},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
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
