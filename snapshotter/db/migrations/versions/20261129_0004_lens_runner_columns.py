"""Runner states fill Lens's own columns; the job's run id gets a column of its own.

Lens's `github_ephemeral_runner_states` has `repository`, `completion_time` and
`deletion_time`, which its readers use; the snapshotter writes them too (from the
job's repository, the completion time and the deletion timestamp). Lens's
`workflow_run_id` holds the id of the run row its processor derived, not GitHub's
run id: the runner's `status.workflowRunId` moves to `job_workflow_run_id`, beside
the other job fields, and `workflow_run_id` is left to Lens.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from snapshotter.db import adoption

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "github_ephemeral_runner_states"
TS = sa.DateTime(timezone=True)


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("job_workflow_run_id", sa.BigInteger()),
        sa.Column("repository", sa.String(500)),
        sa.Column("completion_time", TS),
        sa.Column("deletion_time", TS),
    ]


def upgrade() -> None:
    adoption.add_columns(TABLE, _columns())
    if not adoption.is_adopted(TABLE):  # the snapshotter's own rows: GitHub's run id
        op.execute(
            f"UPDATE {TABLE} SET job_workflow_run_id = workflow_run_id, workflow_run_id = NULL"
            " WHERE workflow_run_id IS NOT NULL"
        )


def downgrade() -> None:
    if not adoption.is_adopted(TABLE):
        op.execute(
            f"UPDATE {TABLE} SET workflow_run_id = job_workflow_run_id"
            " WHERE job_workflow_run_id IS NOT NULL"
        )
    adoption.drop_added_columns(TABLE, [c.name for c in _columns()])
