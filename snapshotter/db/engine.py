"""Engine factory: PostgreSQL in production, an embedded SQLite file by default.

Built by the caller (CLI, daemon, tests) and passed down; nothing here runs at import.
"""

from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    if is_sqlite(url):
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_recycle=1800,
        pool_size=2,
        max_overflow=2,
        connect_args={"connect_timeout": 10, "application_name": "github-runners-snapshotter"},
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (a UI, the `--once` summary) read while the daemon writes;
    # busy_timeout turns a brief lock into a wait instead of an error.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
