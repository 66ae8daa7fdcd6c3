"""Runner states carry Lens's `runner_type` (launcher or worker).

Lens's own `github_ephemeral_runner_states` has the column already (patch062,
`VARCHAR(50) NOT NULL DEFAULT 'unknown'`); the snapshotter's table gets it as a
nullable column. Expand-only: an older version keeps writing without it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa

from snapshotter.db import adoption

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "github_ephemeral_runner_states"


def _columns() -> list[sa.Column[object]]:
    return [sa.Column("runner_type", sa.String(50))]


def upgrade() -> None:
    adoption.add_columns(TABLE, _columns())


def downgrade() -> None:
    adoption.drop_added_columns(TABLE, [c.name for c in _columns()])
