"""Indexes that make retention's deletes cheap (SPEC §4.9): each batch finds its
oldest rows through an index instead of scanning the table.

Expand-only: indexes are added, nothing else. History and rejects are the
snapshotter's own tables. On an adopted Lens runner-state table, Lens already has
an index on (is_deleted, updated_at) for deleted runners: then nothing is created
there (a second copy would only slow Lens's writes); an index created on an
adopted table is recorded, so that a downgrade drops it and none of Lens's.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from snapshotter.db import adoption
from snapshotter.db.adoption import IndexSpec

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HISTORY = IndexSpec(
    "github_runner_set_history",
    "idx_github_runner_set_history_retention",
    ("cluster_name", "observed_at"),
)
REJECTS = IndexSpec(
    "snapshotter_rejects", "idx_snapshotter_rejects_retention", ("cluster_name", "rejected_at")
)
RUNNER_STATES = IndexSpec(
    "github_ephemeral_runner_states",
    "idx_github_ephemeral_runner_states_retention",
    ("is_deleted", "updated_at"),
    where="is_deleted",
)


def _covered(index: IndexSpec) -> bool:
    """Whether the table already has an index on the same leading columns."""
    existing = sa.inspect(op.get_bind()).get_indexes(index.table)
    return any(tuple(i["column_names"][: len(index.columns)]) == index.columns for i in existing)


def upgrade() -> None:
    adoption.add_index(HISTORY)
    adoption.add_index(REJECTS)
    if not _covered(RUNNER_STATES):
        adoption.add_index(RUNNER_STATES)


def downgrade() -> None:
    for index in (RUNNER_STATES, REJECTS, HISTORY):
        adoption.drop_added_index(index.table, index.name)
