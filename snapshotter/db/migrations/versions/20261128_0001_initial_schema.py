"""Initial schema: the Primus Lens GitHub tables plus runner states, history, cursors.

Lens's tables are adopted where they exist (`db.adoption`): what is missing is
added, nothing of Lens's is changed. On an adopted runner-state table (Lens keys it
by namespace and name, with uid '' by default) the uid key is a partial unique
index; an adopted run table keeps Lens's own unique key.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from snapshotter.db import adoption, tables
from snapshotter.db.adoption import IndexSpec

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def _id() -> sa.Column[int]:
    return sa.Column("id", BIG_ID, primary_key=True, autoincrement=True)


def _cluster() -> sa.Column[str]:
    return sa.Column("cluster_name", sa.String(255), nullable=False, server_default=sa.text("''"))


def _int0(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), nullable=False, server_default=sa.text("0"))


def _stamp(name: str) -> sa.Column[datetime]:
    return sa.Column(name, TS, nullable=False, server_default=sa.func.now())


def _str(name: str, length: int = 255) -> sa.Column[str]:
    return sa.Column(name, sa.String(length), nullable=True)


RUNNER_SET_KEY = IndexSpec("github_runner_sets", "uq_github_runner_sets_uid", ("uid",), True)
RUNNER_STATE_KEY = IndexSpec(
    "github_ephemeral_runner_states",
    "uq_github_ephemeral_runner_states_uid",
    ("uid",),
    unique=True,
    where="uid <> ''",
)
CONFIG_KEY = IndexSpec(
    "github_workflow_configs",
    "uq_github_workflow_configs_runner_set",
    ("runner_set_namespace", "runner_set_name", "cluster_name"),
    unique=True,
)
LENS_TABLES = (
    "github_runner_sets",
    "github_ephemeral_runner_states",
    "github_workflow_configs",
    "github_workflow_runs",
)


def _runner_sets() -> None:
    adoption.create_or_adopt(
        "github_runner_sets",
        [
            _id(),
            sa.Column("uid", sa.String(255), nullable=False),
            sa.Column("name", sa.String(255), nullable=False),
            sa.Column("namespace", sa.String(255), nullable=False),
            sa.Column("github_config_url", sa.Text()),
            _str("github_config_secret"),
            _str("runner_group"),
            _str("github_owner"),
            _str("github_repo"),
            _int0("min_runners"),
            _int0("max_runners"),
            sa.Column("status", sa.String(50), nullable=False, server_default=sa.text("'active'")),
            _int0("current_runners"),
            _int0("desired_runners"),
            sa.Column("last_sync_at", TS),
            _stamp("created_at"),
            _stamp("updated_at"),
            _cluster(),
            _str("resource_version", 64),
            _str("github_enterprise"),
            _str("github_host"),
            sa.Column("runner_scale_set_id", sa.BigInteger()),
            _str("runner_scale_set_name"),
            _str("phase", 50),
            _int0("pending_runners"),
            _int0("running_runners"),
            _int0("failed_runners"),
            _int0("busy_runners"),
            sa.Column("deleted_at", TS),
        ],
        constraints=[
            sa.PrimaryKeyConstraint("id", name="pk_github_runner_sets"),
            sa.UniqueConstraint("uid", name="uq_github_runner_sets_uid"),
        ],
        indexes=[
            IndexSpec("github_runner_sets", "idx_github_runner_sets_namespace", ("namespace",)),
            IndexSpec(
                "github_runner_sets",
                "idx_github_runner_sets_active",
                ("status",),
                where="status = 'active'",
            ),
        ],
        adopted_keys=[RUNNER_SET_KEY],
    )


def _runner_states() -> None:
    adoption.create_or_adopt(
        "github_ephemeral_runner_states",
        [
            _id(),
            _cluster(),
            sa.Column("uid", sa.String(255), nullable=False),
            sa.Column("namespace", sa.String(255), nullable=False),
            sa.Column("name", sa.String(255), nullable=False),
            sa.Column("runner_set_id", sa.BigInteger()),
            _str("runner_set_name"),
            _str("runner_set_namespace"),
            _str("phase", 50),
            sa.Column("ready", sa.Boolean()),
            _str("reason"),
            sa.Column("message", sa.Text()),
            sa.Column("runner_id", sa.BigInteger()),
            _str("runner_name"),
            _str("job_id"),
            sa.Column("job_request_id", sa.BigInteger()),
            _str("job_repository"),
            sa.Column("job_workflow_ref", sa.Text()),
            sa.Column("workflow_run_id", sa.BigInteger()),
            sa.Column("job_display_name", sa.Text()),
            _int0("pod_failures"),
            sa.Column("creation_timestamp", TS),
            sa.Column("deletion_timestamp", TS),
            sa.Column("job_assigned_at", TS),
            sa.Column("completed_at", TS),
            _str("completion_source", 20),
            sa.Column(
                "is_completed", sa.Boolean(), nullable=False, server_default=sa.text("false")
            ),
            sa.Column("is_deleted", sa.Boolean(), nullable=False, server_default=sa.text("false")),
            _str("resource_version", 64),
            _stamp("first_seen_at"),
            _stamp("last_seen_at"),
            _stamp("created_at"),
            _stamp("updated_at"),
        ],
        constraints=[
            sa.PrimaryKeyConstraint("id", name="pk_github_ephemeral_runner_states"),
            sa.UniqueConstraint("uid", name="uq_github_ephemeral_runner_states_uid"),
        ],
        indexes=[
            IndexSpec(
                "github_ephemeral_runner_states",
                "idx_github_ephemeral_runner_states_name",
                ("cluster_name", "namespace", "name"),
            ),
            IndexSpec(
                "github_ephemeral_runner_states",
                "idx_github_ephemeral_runner_states_live",
                ("is_deleted",),
                where="NOT is_deleted",
            ),
        ],
        adopted_keys=[RUNNER_STATE_KEY],
    )


def _workflow_configs() -> None:
    adoption.create_or_adopt(
        "github_workflow_configs",
        [
            _id(),
            sa.Column("name", sa.String(255), nullable=False),
            sa.Column("description", sa.Text()),
            sa.Column("runner_set_namespace", sa.String(255), nullable=False),
            sa.Column("runner_set_name", sa.String(255), nullable=False),
            _str("runner_set_uid"),
            sa.Column("github_owner", sa.String(255), nullable=False, server_default=sa.text("''")),
            sa.Column("github_repo", sa.String(255), nullable=False, server_default=sa.text("''")),
            _str("workflow_filter"),
            _str("branch_filter"),
            sa.Column("file_patterns", JSON, nullable=False, server_default=sa.text("'[]'")),
            sa.Column("metric_schema_id", sa.BigInteger()),
            sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.text("true")),
            _str("last_processed_workload_uid"),
            sa.Column("last_checked_at", TS),
            _cluster(),
            sa.Column("display_settings", JSON, nullable=False, server_default=sa.text("'{}'")),
            sa.Column("runner_set_id", sa.BigInteger()),
            _stamp("created_at"),
            _stamp("updated_at"),
        ],
        constraints=[
            sa.PrimaryKeyConstraint("id", name="pk_github_workflow_configs"),
            sa.UniqueConstraint(
                "runner_set_namespace",
                "runner_set_name",
                "cluster_name",
                name="uq_github_workflow_configs_runner_set",
            ),
        ],
        adopted_keys=[CONFIG_KEY],
    )


def _workflow_runs() -> None:
    # An adopted run table keeps its own unique key (Lens: runner_set_id and
    # workload_uid); run rows are inserted "on conflict do nothing" against any key.
    adoption.create_or_adopt(
        "github_workflow_runs",
        [
            _id(),
            sa.Column("config_id", sa.BigInteger(), nullable=False),
            sa.Column("workload_uid", sa.String(255), nullable=False),
            _str("workload_name"),
            _str("workload_namespace"),
            sa.Column("github_run_id", sa.BigInteger()),
            sa.Column("github_run_number", sa.Integer()),
            sa.Column("github_job_id", sa.BigInteger()),
            _str("head_sha", 64),
            _str("head_branch"),
            _str("workflow_name"),
            sa.Column("status", sa.String(50), nullable=False, server_default=sa.text("'pending'")),
            sa.Column(
                "trigger_source",
                sa.String(50),
                nullable=False,
                server_default=sa.text("'realtime'"),
            ),
            _int0("files_found"),
            _int0("files_processed"),
            _int0("metrics_count"),
            sa.Column("workload_started_at", TS),
            sa.Column("workload_completed_at", TS),
            sa.Column("collection_started_at", TS),
            sa.Column("collection_completed_at", TS),
            sa.Column("error_message", sa.Text()),
            _int0("retry_count"),
            sa.Column("runner_set_id", sa.BigInteger()),
            _str("runner_set_name"),
            _str("runner_set_namespace"),
            _str("workflow_status", 50),
            _str("workflow_conclusion", 50),
            _str("collection_status", 50),
            _str("current_job_name"),
            _str("current_step_name"),
            _int0("progress_percent"),
            sa.Column("last_synced_at", TS),
            sa.Column("run_summary_id", sa.BigInteger()),
            _str("runner_type", 50),
            _str("pod_phase", 50),
            _str("pod_condition"),
            sa.Column("pod_message", sa.Text()),
            sa.Column(
                "safe_workload_id", sa.String(255), nullable=False, server_default=sa.text("''")
            ),
            _stamp("created_at"),
            _stamp("updated_at"),
            _cluster(),
            _str("job_id"),
            sa.Column("job_display_name", sa.Text()),
            _str("job_repository"),
            sa.Column("workflow_ref", sa.Text()),
            _str("workflow_path", 512),
            sa.Column("job_assigned_at", TS),
            _str("completion_source", 20),
        ],
        constraints=[
            sa.PrimaryKeyConstraint("id", name="pk_github_workflow_runs"),
            sa.UniqueConstraint(
                "config_id", "workload_uid", name="uq_github_workflow_runs_config_id_workload_uid"
            ),
        ],
        indexes=[
            IndexSpec("github_workflow_runs", "idx_github_workflow_runs_status", ("status",)),
            IndexSpec(
                "github_workflow_runs", "idx_github_workflow_runs_workload_uid", ("workload_uid",)
            ),
        ],
    )


def _bookkeeping() -> None:
    op.create_table(
        "github_runner_set_history",
        _id(),
        _cluster(),
        sa.Column("runner_set_id", sa.BigInteger()),
        sa.Column("runner_set_uid", sa.String(255), nullable=False),
        sa.Column("observed_at", TS, nullable=False),
        _int0("current_runners"),
        _int0("pending_runners"),
        _int0("running_runners"),
        _int0("failed_runners"),
        _int0("busy_runners"),
        _int0("desired_runners"),
        sa.PrimaryKeyConstraint("id", name="pk_github_runner_set_history"),
    )
    op.create_index(
        "idx_github_runner_set_history_set_time",
        "github_runner_set_history",
        ["runner_set_id", "observed_at"],
    )
    op.create_table(
        "snapshotter_sync_cursors",
        _id(),
        _cluster(),
        sa.Column("resource", sa.String(100), nullable=False),
        _str("resource_version", 64),
        sa.Column("last_full_resync_at", TS),
        _stamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_snapshotter_sync_cursors"),
        sa.UniqueConstraint(
            "cluster_name", "resource", name="uq_snapshotter_sync_cursors_cluster_name_resource"
        ),
    )


def upgrade() -> None:
    shared = [t for t in tables.Base.metadata.sorted_tables if t.name in LENS_TABLES]
    adoption.check_adoptable(shared, [RUNNER_SET_KEY, RUNNER_STATE_KEY, CONFIG_KEY])
    _runner_sets()
    _runner_states()
    _workflow_configs()
    _workflow_runs()
    _bookkeeping()


def downgrade() -> None:
    op.drop_table("snapshotter_sync_cursors")
    op.drop_table("github_runner_set_history")
    for table in reversed(LENS_TABLES):
        adoption.drop_or_release(table)
    adoption.drop_additions_table()
