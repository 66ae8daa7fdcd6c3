"""Every session runs in UTC, whatever time zone the server or the database is set to:
Lens writes unknown times as 0001-01-01 00:00+00, which a session west of UTC renders
in year 0 and the driver cannot read."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, create_engine, text

from snapshotter.db import engine as db_engine

ZERO = "SELECT TIMESTAMPTZ '0001-01-01 00:00:00+00'"


@pytest.fixture
def west_of_utc(empty_pg_engine: Engine) -> str:
    """The URL of a database whose sessions default to America/New_York."""
    database = empty_pg_engine.url.database
    with empty_pg_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"ALTER DATABASE \"{database}\" SET TimeZone = 'America/New_York'"))
    empty_pg_engine.dispose()
    return empty_pg_engine.url.render_as_string(hide_password=False)


def test_a_zero_time_reads_back_in_a_database_set_west_of_utc(west_of_utc: str) -> None:
    plain = create_engine(west_of_utc)
    with plain.connect() as conn, pytest.raises(ValueError, match="year"):
        conn.execute(text(ZERO)).scalar()  # what a session in the database's zone meets
    plain.dispose()

    engine = db_engine.make_engine(west_of_utc)
    with engine.connect() as conn:
        assert conn.execute(text(ZERO)).scalar() == datetime(1, 1, 1, tzinfo=UTC)
        assert conn.execute(text("SHOW TimeZone")).scalar() == "UTC"
    engine.dispose()
