"""Table definitions: the upstream Primus Lens tables plus this project's additions.

Names and types of the upstream columns are a compatibility contract. Timestamps are
TIMESTAMPTZ; on SQLite (the embedded default) they are stored as UTC text and come
back as aware datetimes.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# BIGSERIAL on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")
# None is SQL NULL here (unknown), not JSON's null, so that `IS NULL` and COALESCE work.
NullJson = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """TIMESTAMPTZ that always returns aware UTC datetimes, on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given for a TIMESTAMPTZ column")
        if value is not None and dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(
        self,
        value: datetime | None,
        dialect: Dialect,  # noqa: ARG002 - part of the TypeDecorator signature
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: dict[Any, Any] = {datetime: UtcDateTime}  # noqa: RUF012


def _cluster() -> Mapped[str]:
    return mapped_column(String(255), nullable=False, server_default=text("''"))


def _created() -> Mapped[datetime]:
    return mapped_column(UtcDateTime, nullable=False, server_default=func.now())


def _int0() -> Mapped[int]:
    return mapped_column(Integer, nullable=False, server_default=text("0"))


class RunnerSet(Base):
    __tablename__ = "github_runner_sets"
    __table_args__ = (
        Index("idx_github_runner_sets_namespace", "namespace"),
        Index(
            "idx_github_runner_sets_active",
            "status",
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    namespace: Mapped[str] = mapped_column(String(255), nullable=False)
    github_config_url: Mapped[str | None] = mapped_column(Text)
    github_config_secret: Mapped[str | None] = mapped_column(String(255))
    runner_group: Mapped[str | None] = mapped_column(String(255))
    github_owner: Mapped[str | None] = mapped_column(String(255))
    github_repo: Mapped[str | None] = mapped_column(String(255))
    min_runners: Mapped[int] = _int0()
    max_runners: Mapped[int] = _int0()
    status: Mapped[str] = mapped_column(String(50), nullable=False, server_default=text("'active'"))
    current_runners: Mapped[int] = _int0()
    desired_runners: Mapped[int] = _int0()
    last_sync_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()
    # Additions
    cluster_name: Mapped[str] = _cluster()
    resource_version: Mapped[str | None] = mapped_column(String(64))
    github_enterprise: Mapped[str | None] = mapped_column(String(255))
    github_host: Mapped[str | None] = mapped_column(String(255))
    runner_scale_set_id: Mapped[int | None] = mapped_column(BigInteger)
    runner_scale_set_name: Mapped[str | None] = mapped_column(String(255))
    phase: Mapped[str | None] = mapped_column(String(50))
    pending_runners: Mapped[int] = _int0()
    running_runners: Mapped[int] = _int0()
    failed_runners: Mapped[int] = _int0()
    busy_runners: Mapped[int] = _int0()
    deleted_at: Mapped[datetime | None]


class RunnerState(Base):
    __tablename__ = "github_ephemeral_runner_states"
    __table_args__ = (
        Index("idx_github_ephemeral_runner_states_name", "cluster_name", "namespace", "name"),
        Index(
            "idx_github_ephemeral_runner_states_live",
            "is_deleted",
            postgresql_where=text("NOT is_deleted"),
            sqlite_where=text("NOT is_deleted"),
        ),
        Index(  # retention (db/retention.py): deleted runners, oldest first
            "idx_github_ephemeral_runner_states_retention",
            "is_deleted",
            "updated_at",
            postgresql_where=text("is_deleted"),
            sqlite_where=text("is_deleted"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    cluster_name: Mapped[str] = _cluster()
    uid: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    namespace: Mapped[str] = mapped_column(String(255), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    runner_set_id: Mapped[int | None] = mapped_column(BigInteger)
    runner_set_name: Mapped[str | None] = mapped_column(String(255))
    runner_set_namespace: Mapped[str | None] = mapped_column(String(255))
    phase: Mapped[str | None] = mapped_column(String(50))
    ready: Mapped[bool | None] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str | None] = mapped_column(Text)
    runner_id: Mapped[int | None] = mapped_column(BigInteger)
    runner_name: Mapped[str | None] = mapped_column(String(255))
    job_id: Mapped[str | None] = mapped_column(String(255))
    job_request_id: Mapped[int | None] = mapped_column(BigInteger)
    job_repository: Mapped[str | None] = mapped_column(String(255))
    job_workflow_ref: Mapped[str | None] = mapped_column(Text)
    job_workflow_run_id: Mapped[int | None] = mapped_column(BigInteger)  # status.workflowRunId
    job_display_name: Mapped[str | None] = mapped_column(Text)
    # Lens's processor's link to the run row it derived; never written here
    workflow_run_id: Mapped[int | None] = mapped_column(BigInteger)
    # Lens's runner kind (launcher | worker), as its runner-state table names it
    runner_type: Mapped[str | None] = mapped_column(String(50))
    # Lens's names for the job's repository, completion and deletion times
    repository: Mapped[str | None] = mapped_column(String(500))
    completion_time: Mapped[datetime | None]
    deletion_time: Mapped[datetime | None]
    # Run facts (annotations, else derived from the workflow ref); Lens's names and sizes
    github_run_id: Mapped[int | None] = mapped_column(BigInteger)
    github_run_number: Mapped[int | None] = mapped_column(Integer)
    github_job_id: Mapped[int | None] = mapped_column(BigInteger)
    head_sha: Mapped[str | None] = mapped_column(String(255))
    head_branch: Mapped[str | None] = mapped_column(String(255))
    workflow_name: Mapped[str | None] = mapped_column(String(500))
    pod_failures: Mapped[int] = _int0()
    creation_timestamp: Mapped[datetime | None]
    deletion_timestamp: Mapped[datetime | None]
    job_assigned_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    completion_source: Mapped[str | None] = mapped_column(String(20))
    is_completed: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default=text("false")
    )
    is_deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    resource_version: Mapped[str | None] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = _created()
    last_seen_at: Mapped[datetime] = _created()
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()
    # The pod template's summed requests and limits: {"cpu": millicores, "memory":
    # bytes, "amd.com/gpu": devices, ...} (SPEC §3.6)
    resource_requests: Mapped[Any] = mapped_column(NullJson, nullable=True)
    resource_limits: Mapped[Any] = mapped_column(NullJson, nullable=True)


class WorkflowConfig(Base):
    __tablename__ = "github_workflow_configs"
    __table_args__ = (
        UniqueConstraint(
            "runner_set_namespace",
            "runner_set_name",
            "cluster_name",
            name="uq_github_workflow_configs_runner_set",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    runner_set_namespace: Mapped[str] = mapped_column(String(255), nullable=False)
    runner_set_name: Mapped[str] = mapped_column(String(255), nullable=False)
    runner_set_uid: Mapped[str | None] = mapped_column(String(255))
    github_owner: Mapped[str] = mapped_column(
        String(255), nullable=False, server_default=text("''")
    )
    github_repo: Mapped[str] = mapped_column(String(255), nullable=False, server_default=text("''"))
    workflow_filter: Mapped[str | None] = mapped_column(String(255))
    branch_filter: Mapped[str | None] = mapped_column(String(255))
    file_patterns: Mapped[Any] = mapped_column(Json, nullable=False, server_default=text("'[]'"))
    metric_schema_id: Mapped[int | None] = mapped_column(BigInteger)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    last_processed_workload_uid: Mapped[str | None] = mapped_column(String(255))
    last_checked_at: Mapped[datetime | None]
    cluster_name: Mapped[str] = _cluster()
    display_settings: Mapped[Any] = mapped_column(Json, nullable=False, server_default=text("'{}'"))
    runner_set_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class WorkflowRun(Base):
    __tablename__ = "github_workflow_runs"
    __table_args__ = (
        UniqueConstraint("config_id", "workload_uid"),
        Index("idx_github_workflow_runs_status", "status"),
        Index("idx_github_workflow_runs_workload_uid", "workload_uid"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    config_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    workload_uid: Mapped[str] = mapped_column(String(255), nullable=False)
    workload_name: Mapped[str | None] = mapped_column(String(255))
    workload_namespace: Mapped[str | None] = mapped_column(String(255))
    github_run_id: Mapped[int | None] = mapped_column(BigInteger)
    github_run_number: Mapped[int | None] = mapped_column(Integer)
    github_job_id: Mapped[int | None] = mapped_column(BigInteger)
    head_sha: Mapped[str | None] = mapped_column(String(64))
    head_branch: Mapped[str | None] = mapped_column(String(255))
    workflow_name: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(
        String(50), nullable=False, server_default=text("'pending'")
    )
    trigger_source: Mapped[str] = mapped_column(
        String(50), nullable=False, server_default=text("'realtime'")
    )
    files_found: Mapped[int] = _int0()
    files_processed: Mapped[int] = _int0()
    metrics_count: Mapped[int] = _int0()
    workload_started_at: Mapped[datetime | None]
    workload_completed_at: Mapped[datetime | None]
    collection_started_at: Mapped[datetime | None]
    collection_completed_at: Mapped[datetime | None]
    error_message: Mapped[str | None] = mapped_column(Text)
    retry_count: Mapped[int] = _int0()
    runner_set_id: Mapped[int | None] = mapped_column(BigInteger)
    runner_set_name: Mapped[str | None] = mapped_column(String(255))
    runner_set_namespace: Mapped[str | None] = mapped_column(String(255))
    workflow_status: Mapped[str | None] = mapped_column(String(50))
    workflow_conclusion: Mapped[str | None] = mapped_column(String(50))
    collection_status: Mapped[str | None] = mapped_column(String(50))
    current_job_name: Mapped[str | None] = mapped_column(String(255))
    current_step_name: Mapped[str | None] = mapped_column(String(255))
    progress_percent: Mapped[int] = _int0()
    last_synced_at: Mapped[datetime | None]
    run_summary_id: Mapped[int | None] = mapped_column(BigInteger)
    runner_type: Mapped[str | None] = mapped_column(String(50))
    pod_phase: Mapped[str | None] = mapped_column(String(50))
    pod_condition: Mapped[str | None] = mapped_column(String(255))
    pod_message: Mapped[str | None] = mapped_column(Text)
    safe_workload_id: Mapped[str] = mapped_column(
        String(255), nullable=False, server_default=text("''")
    )
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()
    # Additions
    cluster_name: Mapped[str] = _cluster()
    job_id: Mapped[str | None] = mapped_column(String(255))
    job_display_name: Mapped[str | None] = mapped_column(Text)
    job_repository: Mapped[str | None] = mapped_column(String(255))
    workflow_ref: Mapped[str | None] = mapped_column(Text)
    workflow_path: Mapped[str | None] = mapped_column(String(512))
    job_assigned_at: Mapped[datetime | None]
    completion_source: Mapped[str | None] = mapped_column(String(20))
    # The runner's requests when the job ran (as in the runner state)
    resource_requests: Mapped[Any] = mapped_column(NullJson, nullable=True)


class RunnerSetHistory(Base):
    """One row per change of a runner set's counts; an idle cluster adds nothing."""

    __tablename__ = "github_runner_set_history"
    __table_args__ = (
        Index("idx_github_runner_set_history_set_time", "runner_set_id", "observed_at"),
        Index("idx_github_runner_set_history_retention", "cluster_name", "observed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    cluster_name: Mapped[str] = _cluster()
    runner_set_id: Mapped[int | None] = mapped_column(BigInteger)
    runner_set_uid: Mapped[str] = mapped_column(String(255), nullable=False)
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    current_runners: Mapped[int] = _int0()
    pending_runners: Mapped[int] = _int0()
    running_runners: Mapped[int] = _int0()
    failed_runners: Mapped[int] = _int0()
    busy_runners: Mapped[int] = _int0()
    desired_runners: Mapped[int] = _int0()


class SyncCursor(Base):
    """Last list/watch position per resource, committed with the rows it covers."""

    __tablename__ = "snapshotter_sync_cursors"
    __table_args__ = (UniqueConstraint("cluster_name", "resource"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    cluster_name: Mapped[str] = _cluster()
    resource: Mapped[str] = mapped_column(String(100), nullable=False)
    resource_version: Mapped[str | None] = mapped_column(String(64))
    last_full_resync_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = _created()


class Reject(Base):
    """Objects the database refused to store even after fitting (SPEC §7, §4.8), with
    why, until they are written."""

    __tablename__ = "snapshotter_rejects"
    __table_args__ = (
        UniqueConstraint(
            "cluster_name",
            "resource",
            "uid",
            "resource_version",
            name="uq_snapshotter_rejects_object_version",
        ),
        Index("idx_snapshotter_rejects_retention", "cluster_name", "rejected_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    cluster_name: Mapped[str] = _cluster()
    resource: Mapped[str] = mapped_column(String(100), nullable=False)
    uid: Mapped[str] = mapped_column(String(255), nullable=False)
    namespace: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    resource_version: Mapped[str] = mapped_column(String(64), nullable=False)
    error: Mapped[str] = mapped_column(Text, nullable=False)
    rejected_at: Mapped[datetime] = _created()
    # What was received about the object (a retry writes it); null for counts
    payload: Mapped[Any] = mapped_column(Json, nullable=True)
    retry_requested_at: Mapped[datetime | None]


class Cluster(Base):
    """One row per cluster_name: which cluster writes it (the kube-system namespace's
    uid), and the leader epoch that fences writes (SPEC §6)."""

    __tablename__ = "snapshotter_clusters"
    __table_args__ = (
        UniqueConstraint("cluster_name", name="uq_snapshotter_clusters_cluster_name"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    cluster_name: Mapped[str] = mapped_column(String(255), nullable=False)
    identity: Mapped[str | None] = mapped_column(String(255))
    leader_epoch: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    leader: Mapped[str | None] = mapped_column(String(255))
    leader_since: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()
