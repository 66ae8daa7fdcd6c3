"""A Primus Lens database in its final shape, for the adoption tests.

The four GitHub tables as Lens's own migrations leave them (patch043-063, applied
in lexical order, so patch057 has dropped `head_sha`, `head_branch`,
`workflow_name` and `github_run_number` from the run table), with their indexes
and defaults, and rows as Lens's Go code writes them: zero times (0001-01-01)
instead of NULL, a config made in the Lens UI bound to one runner set, runs and
runner states written by the exporter.
"""

from typing import Any

from sqlalchemy import Connection, Engine, text

RUNNER_SETS = """
CREATE TABLE github_runner_sets (
    id BIGSERIAL PRIMARY KEY,
    uid VARCHAR(255) NOT NULL,
    name VARCHAR(255) NOT NULL,
    namespace VARCHAR(255) NOT NULL,
    github_config_url TEXT,
    github_config_secret VARCHAR(255),
    runner_group VARCHAR(255),
    github_owner VARCHAR(255),
    github_repo VARCHAR(255),
    min_runners INT NOT NULL DEFAULT 0,
    max_runners INT NOT NULL DEFAULT 0,
    status VARCHAR(50) NOT NULL DEFAULT 'active',
    current_runners INT NOT NULL DEFAULT 0,
    desired_runners INT NOT NULL DEFAULT 0,
    last_sync_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE UNIQUE INDEX idx_github_runner_sets_uid ON github_runner_sets(uid);
CREATE INDEX idx_github_runner_sets_namespace ON github_runner_sets(namespace);
CREATE INDEX idx_github_runner_sets_status ON github_runner_sets(status) WHERE status = 'active';
"""

WORKFLOW_CONFIGS = """
CREATE TABLE github_workflow_configs (
    id BIGSERIAL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    description TEXT,
    runner_set_namespace VARCHAR(255) NOT NULL,
    runner_set_name VARCHAR(255) NOT NULL,
    runner_set_uid VARCHAR(255),
    github_owner VARCHAR(255) NOT NULL,
    github_repo VARCHAR(255) NOT NULL,
    workflow_filter VARCHAR(255),
    branch_filter VARCHAR(255),
    file_patterns JSONB NOT NULL DEFAULT '[]',
    metric_schema_id BIGINT,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    last_processed_workload_uid VARCHAR(255),
    last_checked_at TIMESTAMPTZ,
    cluster_name VARCHAR(255) NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    display_settings JSONB NOT NULL DEFAULT '{}',
    runner_set_id BIGINT
);
CREATE UNIQUE INDEX idx_github_workflow_configs_unique
    ON github_workflow_configs(runner_set_namespace, runner_set_name, cluster_name);
CREATE INDEX idx_github_workflow_configs_enabled ON github_workflow_configs(enabled) WHERE enabled;
CREATE INDEX idx_github_workflow_configs_cluster ON github_workflow_configs(cluster_name);
CREATE INDEX idx_github_workflow_configs_runner_set_id ON github_workflow_configs(runner_set_id);
"""

WORKFLOW_RUNS = """
CREATE TABLE github_workflow_runs (
    id BIGSERIAL PRIMARY KEY,
    config_id BIGINT,
    workload_uid VARCHAR(255) NOT NULL,
    workload_name VARCHAR(255),
    workload_namespace VARCHAR(255),
    github_run_id BIGINT,
    github_job_id BIGINT,
    status VARCHAR(50) NOT NULL DEFAULT 'pending',
    trigger_source VARCHAR(50) NOT NULL DEFAULT 'realtime',
    files_found INT NOT NULL DEFAULT 0,
    files_processed INT NOT NULL DEFAULT 0,
    metrics_count INT NOT NULL DEFAULT 0,
    workload_started_at TIMESTAMPTZ,
    workload_completed_at TIMESTAMPTZ,
    collection_started_at TIMESTAMPTZ,
    collection_completed_at TIMESTAMPTZ,
    error_message TEXT,
    retry_count INT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    runner_set_id BIGINT,
    runner_set_name VARCHAR(255),
    runner_set_namespace VARCHAR(255),
    workflow_status VARCHAR(50),
    workflow_conclusion VARCHAR(50),
    collection_status VARCHAR(50),
    current_job_name VARCHAR(255),
    current_step_name VARCHAR(255),
    progress_percent INT DEFAULT 0,
    last_synced_at TIMESTAMP,
    run_summary_id BIGINT,
    runner_type VARCHAR(20) DEFAULT 'unknown',
    pod_phase VARCHAR(20),
    pod_condition VARCHAR(50),
    pod_message TEXT,
    safe_workload_id VARCHAR(255) NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX idx_github_workflow_runs_runner_set_workload
    ON github_workflow_runs(runner_set_id, workload_uid);
CREATE INDEX idx_github_workflow_runs_runner_set_workload_name
    ON github_workflow_runs(runner_set_id, workload_name);
CREATE INDEX idx_github_workflow_runs_runner_set_id ON github_workflow_runs(runner_set_id);
CREATE INDEX idx_github_workflow_runs_runner_set_name
    ON github_workflow_runs(runner_set_namespace, runner_set_name);
CREATE INDEX idx_github_workflow_runs_runner_set_status
    ON github_workflow_runs(runner_set_id, status);
CREATE INDEX idx_github_workflow_runs_config_status ON github_workflow_runs(config_id, status);
CREATE INDEX idx_github_workflow_runs_workload_uid ON github_workflow_runs(workload_uid);
CREATE INDEX idx_github_workflow_runs_workload_completed
    ON github_workflow_runs(workload_completed_at);
CREATE INDEX idx_github_workflow_runs_run_summary_id ON github_workflow_runs(run_summary_id);
CREATE INDEX idx_github_workflow_runs_pending
    ON github_workflow_runs(status) WHERE status = 'pending';
CREATE INDEX idx_github_workflow_runs_github_run_id
    ON github_workflow_runs(github_run_id) WHERE github_run_id IS NOT NULL;
CREATE INDEX idx_github_workflow_runs_collection_status
    ON github_workflow_runs(collection_status) WHERE collection_status IS NOT NULL;
CREATE INDEX idx_github_workflow_runs_pod_condition
    ON github_workflow_runs(pod_condition) WHERE pod_condition IS NOT NULL;
CREATE INDEX idx_github_workflow_runs_safe_workload_id
    ON github_workflow_runs(safe_workload_id) WHERE safe_workload_id <> '';
CREATE INDEX idx_runs_runner_type ON github_workflow_runs(runner_type);
"""

RUNNER_STATES = """
CREATE TABLE github_ephemeral_runner_states (
    id BIGSERIAL PRIMARY KEY,
    namespace VARCHAR(255) NOT NULL,
    name VARCHAR(255) NOT NULL,
    uid VARCHAR(255) NOT NULL DEFAULT '',
    runner_set_name VARCHAR(255) NOT NULL DEFAULT '',
    runner_type VARCHAR(50) NOT NULL DEFAULT 'unknown',
    phase VARCHAR(50) NOT NULL DEFAULT '',
    github_run_id BIGINT NOT NULL DEFAULT 0,
    github_job_id BIGINT NOT NULL DEFAULT 0,
    github_run_number INT NOT NULL DEFAULT 0,
    workflow_name VARCHAR(500) NOT NULL DEFAULT '',
    head_sha VARCHAR(255) NOT NULL DEFAULT '',
    head_branch VARCHAR(255) NOT NULL DEFAULT '',
    repository VARCHAR(500) NOT NULL DEFAULT '',
    pod_phase VARCHAR(50) NOT NULL DEFAULT '',
    pod_condition VARCHAR(255) NOT NULL DEFAULT '',
    pod_message TEXT NOT NULL DEFAULT '',
    is_completed BOOLEAN NOT NULL DEFAULT FALSE,
    is_deleted BOOLEAN NOT NULL DEFAULT FALSE,
    creation_timestamp TIMESTAMPTZ,
    completion_time TIMESTAMPTZ,
    deletion_time TIMESTAMPTZ,
    workflow_run_id BIGINT NOT NULL DEFAULT 0,
    run_summary_id BIGINT NOT NULL DEFAULT 0,
    last_status VARCHAR(50) NOT NULL DEFAULT '',
    last_processed_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    safe_workload_id VARCHAR(255) NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX idx_runner_states_ns_name ON github_ephemeral_runner_states(namespace, name);
CREATE INDEX idx_runner_states_unprocessed
    ON github_ephemeral_runner_states(updated_at, last_processed_at);
CREATE INDEX idx_runner_states_runner_set
    ON github_ephemeral_runner_states(runner_set_name, namespace);
CREATE INDEX idx_runner_states_deleted
    ON github_ephemeral_runner_states(is_deleted, updated_at) WHERE is_deleted;
"""

DDL = {
    "github_runner_sets": RUNNER_SETS,
    "github_workflow_configs": WORKFLOW_CONFIGS,
    "github_workflow_runs": WORKFLOW_RUNS,
    "github_ephemeral_runner_states": RUNNER_STATES,
}
TABLES = tuple(DDL)
ZERO = "0001-01-01 00:00:00+00"
NAMESPACE = "arc-runners"
POOL = "gpu-runners"  # the pool Lens's UI config is bound to

ROWS: dict[str, list[dict[str, Any]]] = {
    "github_runner_sets": [
        {
            "uid": "lens-ars-0001",
            "name": POOL,
            "namespace": NAMESPACE,
            "github_config_url": "https://github.com/acme-corp/models",
            "github_config_secret": "gpu-runners-secret",
            "github_owner": "acme-corp",
            "github_repo": "models",
            "min_runners": 0,
            "max_runners": 8,
            "status": "active",
            "current_runners": 2,
            "desired_runners": 2,
            "last_sync_at": "2026-05-01 10:00:00+00",
        },
    ],
    "github_workflow_configs": [
        {
            "name": "gpu benchmarks",
            "description": "made in the Lens UI",
            "runner_set_namespace": NAMESPACE,
            "runner_set_name": POOL,
            "github_owner": "acme-corp",
            "github_repo": "models",
            "workflow_filter": None,
            "branch_filter": None,
            "file_patterns": '["results/**/*.json"]',
            "display_settings": '{"chart": "line"}',
            "runner_set_id": 1,
            "last_checked_at": ZERO,
        },
    ],
    "github_workflow_runs": [
        {
            "config_id": 1,
            "workload_uid": "lens-er-0001",
            "workload_name": "gpu-runners-abcde-runner-aaaaa",
            "workload_namespace": NAMESPACE,
            "github_run_id": 15320047781,
            "github_job_id": 43121,
            "status": "completed",
            "workload_started_at": "2026-05-01 09:00:00+00",
            "workload_completed_at": "2026-05-01 09:20:00+00",
            "collection_started_at": ZERO,
            "collection_completed_at": ZERO,
            "runner_set_id": 1,
            "runner_set_name": POOL,
            "runner_set_namespace": NAMESPACE,
            "runner_type": "launcher",
        },
        {
            "config_id": 0,  # the exporter's "no config matched"
            "workload_uid": "lens-er-0002",
            "workload_name": "gpu-runners-abcde-runner-bbbbb",
            "workload_namespace": NAMESPACE,
            "github_run_id": 15320047782,
            "github_job_id": 0,
            "status": "workload_running",
            "workload_started_at": "2026-05-01 09:30:00+00",
            "workload_completed_at": ZERO,
            "runner_set_id": 1,
            "runner_set_name": POOL,
            "runner_set_namespace": NAMESPACE,
        },
    ],
    "github_ephemeral_runner_states": [
        {
            "namespace": NAMESPACE,
            "name": "gpu-runners-abcde-runner-aaaaa",
            "uid": "lens-er-0001",
            "runner_set_name": POOL,
            "phase": "Succeeded",
            "github_run_id": 15320047781,
            "github_job_id": 43121,
            "workflow_name": "benchmarks",
            "head_branch": "main",
            "repository": "acme-corp/models",
            "is_completed": True,
            "is_deleted": True,
            "creation_timestamp": "2026-05-01 08:59:00+00",
            "completion_time": "2026-05-01 09:20:00+00",
            "deletion_time": "2026-05-01 09:20:05+00",
            "workflow_run_id": 1,
            "last_status": "completed",
            "last_processed_at": "2026-05-01 09:21:00+00",
        },
        {
            "namespace": NAMESPACE,
            "name": "gpu-runners-abcde-runner-bbbbb",
            "uid": "lens-er-0002",
            "runner_set_name": POOL,
            "phase": "Running",
            "github_run_id": 15320047782,
            "creation_timestamp": "2026-05-01 09:29:00+00",
            "completion_time": ZERO,
        },
        {  # a row of Lens's generation that wrote no uid
            "namespace": NAMESPACE,
            "name": "gpu-runners-abcde-runner-ccccc",
            "phase": "Pending",
            "creation_timestamp": ZERO,
        },
    ],
}


def create(engine: Engine, tables: tuple[str, ...] = TABLES) -> None:
    """Lens's tables (all, or some) with Lens-written rows."""
    with engine.begin() as conn:
        for table in tables:
            conn.exec_driver_sql(DDL[table])
        for table in tables:
            _insert(conn, table, ROWS[table])


def _insert(conn: Connection, table: str, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        columns = ", ".join(row)
        values = ", ".join(f":{c}" for c in row)
        conn.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({values})"), row)


def lens_rows(engine: Engine, tables: tuple[str, ...] = TABLES) -> dict[str, list[tuple[Any, ...]]]:
    """Every fixture row, in Lens's own columns only, ordered by id."""
    dump: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in tables:
            columns = _lens_columns(table)
            query = f"SELECT {', '.join(columns)} FROM {table} WHERE id <= :n ORDER BY id"
            result = conn.execute(text(query), {"n": len(ROWS[table])})
            dump[table] = [tuple(r) for r in result]
    return dump


def _lens_columns(table: str) -> list[str]:
    lines = DDL[table].split("(", 1)[1].split(");", 1)[0].splitlines()
    return [line.split()[0] for line in lines if line.strip()]


def schema(engine: Engine) -> dict[str, Any]:
    """Columns (name, type, nullability, default) and index definitions of every
    table, to compare a schema before and after an upgrade."""
    with engine.connect() as conn:
        columns = conn.execute(
            text(
                "SELECT table_name, column_name, data_type, character_maximum_length,"
                " is_nullable, column_default FROM information_schema.columns"
                " WHERE table_schema = 'public' ORDER BY table_name, column_name"
            )
        ).all()
        indexes = conn.execute(
            text(
                "SELECT tablename, indexname, indexdef FROM pg_indexes"
                " WHERE schemaname = 'public' ORDER BY tablename, indexname"
            )
        ).all()
    return {"columns": [tuple(c) for c in columns], "indexes": [tuple(i) for i in indexes]}


# Final Lens's task queue and run summaries (Lens/modules/core/pkg/database/migrations/
# patch033-workload_task_state.sql; patch056-github_workflow_run_summaries.sql with
# patch060 and patch061 applied), trimmed to the columns and keys the tests need.
TASK_TABLES_DDL = """
CREATE TABLE workload_task_state (
    id BIGSERIAL PRIMARY KEY,
    workload_uid VARCHAR(128) NOT NULL,
    task_type VARCHAR(50) NOT NULL,
    status VARCHAR(50) NOT NULL DEFAULT 'pending',
    lock_owner VARCHAR(128),
    lock_acquired_at TIMESTAMPTZ,
    lock_expires_at TIMESTAMPTZ,
    lock_version BIGINT NOT NULL DEFAULT 0,
    ext JSONB DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT uq_workload_task UNIQUE (workload_uid, task_type)
);
CREATE TABLE github_workflow_run_summaries (
    id BIGSERIAL PRIMARY KEY,
    github_run_id BIGINT DEFAULT 0,
    github_run_number INT NOT NULL,
    github_run_attempt INT DEFAULT 1,
    owner VARCHAR(255) NOT NULL,
    repo VARCHAR(255) NOT NULL,
    workflow_name VARCHAR(500),
    head_sha VARCHAR(64),
    head_branch VARCHAR(255),
    status VARCHAR(50),
    conclusion VARCHAR(50),
    total_jobs INT DEFAULT 0,
    progress_percent INT DEFAULT 0,
    collection_status VARCHAR(50),
    primary_runner_set_id BIGINT,
    config_id BIGINT,
    graph_fetched BOOLEAN DEFAULT FALSE,
    code_analysis_triggered BOOLEAN DEFAULT FALSE,
    created_at TIMESTAMP DEFAULT NOW(),
    updated_at TIMESTAMP DEFAULT NOW(),
    display_title TEXT,
    is_placeholder BOOLEAN DEFAULT false,
    active_launchers INT DEFAULT 0,
    active_workers INT DEFAULT 0,
    error_count INT DEFAULT 0
);
CREATE UNIQUE INDEX uq_run_summaries_run_attempt
    ON github_workflow_run_summaries(github_run_id, github_run_attempt);
"""


def create_task_tables(engine: Engine) -> None:
    """Final Lens's `workload_task_state` and `github_workflow_run_summaries`, empty."""
    with engine.begin() as conn:
        conn.exec_driver_sql(TASK_TABLES_DDL)
