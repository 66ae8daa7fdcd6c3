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

from snapshotter.errors import StoreError, StoreRejected, StoreUnavailable

# SQLSTATE classes of errors caused by the values themselves: data exception,
# integrity constraint violation, and PL/pgSQL's RAISE (a trigger refusing a row).
DATA_ERROR_CLASSES = ("22", "23", "P0")


def _sqlstate(error: DBAPIError) -> str:
    return str(getattr(error.orig, "pgcode", "") or "")


def classified(what: str, error: Exception) -> StoreError:
    """StoreRejected for errors in the data, StoreUnavailable for everything else."""
    detail = str(error).split("\n[SQL:", 1)[0].strip()
    message = f"{what} failed: {detail}"
    if isinstance(error, DataError | IntegrityError):
        return StoreRejected(message)
    if isinstance(error, DBAPIError) and _sqlstate(error).startswith(DATA_ERROR_CLASSES):
        return StoreRejected(message)
    if isinstance(error, ValueError):  # the driver refused a value (NUL, bad encoding)
        return StoreRejected(message)
    return StoreUnavailable(message)


@contextmanager
def translated(what: str) -> Iterator[None]:
    try:
        yield
    except StoreError:
        raise
    except (SQLAlchemyError, ValueError) as e:
        raise classified(what, e) from e
