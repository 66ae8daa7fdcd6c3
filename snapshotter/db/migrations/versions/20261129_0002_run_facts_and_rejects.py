"""Run facts in runner states; the rejects table.

Runner states keep the run facts (annotations, else derived from the workflow ref)
so that a run recorded later, e.g. as vanished after a restart, has them; the
names and sizes are those of Lens's own runner-state table. Objects the database
refuses even after fitting are recorded in `snapshotter_rejects` (SPEC §7). An
adopted Lens table has these columns already.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from snapshotter.db import adoption

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUN_FACTS = (
    ("github_run_id", sa.BigInteger),
    ("github_run_number", sa.Integer),
    ("github_job_id", sa.BigInteger),
    ("head_sha", lambda: sa.String(255)),
    ("head_branch", lambda: sa.String(255)),
    ("workflow_name", lambda: sa.String(500)),
)


def upgrade() -> None:
    adoption.add_columns(
        "github_ephemeral_runner_states", [sa.Column(name, kind()) for name, kind in RUN_FACTS]
    )
    op.create_table(
        "snapshotter_rejects",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True),
        sa.Column("cluster_name", sa.String(255), nullable=False, server_default=sa.text("''")),
        sa.Column("resource", sa.String(100), nullable=False),
        sa.Column("uid", sa.String(255), nullable=False),
        sa.Column("namespace", sa.String(255)),
        sa.Column("name", sa.String(255)),
        sa.Column("resource_version", sa.String(64), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column(
            "rejected_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("id", name="pk_snapshotter_rejects"),
        sa.UniqueConstraint(
            "cluster_name",
            "resource",
            "uid",
            "resource_version",
            name="uq_snapshotter_rejects_object_version",
        ),
    )


def downgrade() -> None:
    op.drop_table("snapshotter_rejects")
    adoption.drop_added_columns("github_ephemeral_runner_states", [n for n, _ in RUN_FACTS])
