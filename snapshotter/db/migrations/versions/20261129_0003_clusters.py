"""The clusters table: cluster identity and the leader epoch.

One row per cluster_name. `identity` is the writing cluster's kube-system namespace
uid, so that a second cluster configured with the same cluster_name is refused
instead of marking the first one's pools deleted. `leader_epoch` is bumped by each
new leader and checked by every write transaction (fencing).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "snapshotter_clusters",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True),
        sa.Column("cluster_name", sa.String(255), nullable=False),
        sa.Column("identity", sa.String(255)),
        sa.Column("leader_epoch", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("leader", sa.String(255)),
        sa.Column("leader_since", TS),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_snapshotter_clusters"),
        sa.UniqueConstraint("cluster_name", name="uq_snapshotter_clusters_cluster_name"),
    )


def downgrade() -> None:
    op.drop_table("snapshotter_clusters")
