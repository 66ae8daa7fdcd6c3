"""Database failures sorted into "retry later" and "this data cannot be stored".

An outage (connection refused or lost, timeouts, a server shutting down, lock or
serialization conflicts, missing rights) must never drop data: the caller holds it
and retries. A data error (SQLSTATE class 22, an integrity violation, a value the
driver refuses to send) fails again on every retry of the same rows: the caller
isolates the object that causes it. Nothing outside `db/` sees SQLAlchemy errors.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError

from snapshotter.errors import StoreError, StoreForbidden, StoreRejected, StoreUnavailable

# SQLSTATE classes of errors caused by the values themselves: data exception,
# integrity constraint violation, and PL/pgSQL's RAISE (a trigger refusing a row).
DATA_ERROR_CLASSES = ("22", "23", "P0")
# Invalid authorization (bad password, no such role) and insufficient privilege.
FORBIDDEN = ("28", "42501")
# Connection refusals that waiting does not fix (libpq's words; no SQLSTATE before a
# session exists): the login, and TLS: a server certificate the CA does not vouch
# for or issued for another host, a CA file that is missing, a server without TLS
# where the URL requires it.
REFUSED = (
    "password authentication failed",
    "no pg_hba.conf entry",
    "pg_hba.conf rejects connection",
    "certificate verify failed",
    "does not match host name",
    "root certificate file",
    "server does not support SSL",
)


def _sqlstate(error: DBAPIError) -> str:
    return str(getattr(error.orig, "pgcode", "") or "")


def one_line(error: Exception) -> str:
    """The driver's message on one line, without SQLAlchemy's SQL and links (a
    start-up error is one line; the URL is never part of it)."""
    text = str(getattr(error, "orig", None) or error)
    lines = [line.strip() for line in text.splitlines()]
    kept = [
        line
        for line in lines
        if line and not line.startswith(("[SQL:", "[parameters:", "(Background"))
    ]
    return " ".join(kept)


def classified(what: str, error: Exception) -> StoreError:
    """StoreRejected for errors in the data, StoreUnavailable for everything else."""
    message = f"{what} failed: {one_line(error)}"
    if isinstance(error, DataError | IntegrityError):
        return StoreRejected(message)
    if isinstance(error, DBAPIError) and _sqlstate(error).startswith(DATA_ERROR_CLASSES):
        return StoreRejected(message)
    if isinstance(error, ValueError):  # the driver refused a value (NUL, bad encoding)
        return StoreRejected(message)
    if isinstance(error, DBAPIError) and _sqlstate(error).startswith(FORBIDDEN):
        return StoreForbidden(message)
    if any(refusal in message for refusal in REFUSED):
        return StoreForbidden(message)
    return StoreUnavailable(message)


@contextmanager
def translated(what: str) -> Iterator[None]:
    try:
        yield
    except StoreError:
        raise
    except (SQLAlchemyError, ValueError) as e:
        raise classified(what, e) from e
