"""Rejected objects keep what was received about them, so that a retry can write them.

`payload` holds the coalesced observation (or the list's finding) of a refused
object, as JSON; `retry_requested_at` is set by `snapshotter rejects retry` and
read by the leader, which retries at once. Both are nullable: rows of earlier
versions stay as they were (shown by `rejects list`, discarded by a retry), and a
previous version writing alongside (a rolling upgrade) never fills them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from snapshotter.db import adoption

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "snapshotter_rejects"
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("payload", JSON),
        sa.Column("retry_requested_at", sa.DateTime(timezone=True)),
    ]


def upgrade() -> None:
    adoption.add_columns(TABLE, _columns())


def downgrade() -> None:
    adoption.drop_added_columns(TABLE, [c.name for c in _columns()])
