"""What each job cost: the runner pod's requests and limits.

Runner states record their pod template's requests and limits summed over its
containers, and each run row the requests its runner had when the job ran (SPEC
§3.6), as JSON by resource name: `{"cpu": 4000, "memory": 17179869184,
"amd.com/gpu": 8}` (cpu in millicores, memory in bytes). Expand-only: nullable
columns, added to an adopted Lens table too (and recorded, so that a downgrade
removes only these); a previous version writing alongside leaves them NULL.

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from snapshotter.db import adoption

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNNERS = "github_ephemeral_runner_states"
RUNS = "github_workflow_runs"
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
COLUMNS = {
    RUNNERS: ("resource_requests", "resource_limits"),
    RUNS: ("resource_requests",),
}


def upgrade() -> None:
    for table, names in COLUMNS.items():
        adoption.add_columns(table, [sa.Column(name, JSON) for name in names])


def downgrade() -> None:
    for table, names in COLUMNS.items():
        adoption.drop_added_columns(table, names)
