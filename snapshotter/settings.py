"""Configuration: one YAML file, overridden by `SNAPSHOTTER_*` environment variables.

Validated by pydantic; every problem becomes one message naming its key, and the
CLI exits 2 with all of them. Nothing here runs at import: `load_settings` builds a
frozen Settings once and the CLI passes plain values down.
"""

import json
import os
import re
import socket
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from snapshotter.errors import ConfigError

ENV_PREFIX = "SNAPSHOTTER_"
DEFAULT_SQLITE_PATH = "snapshotter.db"
DEFAULT_LEASE_NAME = "github-runners-snapshotter"
# Kubernetes namespace names are DNS-1123 labels; most object names (a Lease's too)
# are DNS-1123 subdomains: labels joined by dots, 253 characters at most.
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_LABEL_MAX = 63
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS_SUBDOMAIN_MAX = 253


def _not_a_bool(value: object) -> object:
    # pydantic reads true as 1; `interval_seconds: true` is a mistake, not one second
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")  # noqa: TRY004 - pydantic wants ValueError
    return value


Number = Annotated[float, BeforeValidator(_not_a_bool)]
Count = Annotated[int, BeforeValidator(_not_a_bool)]


def _dns_label(name: str) -> str:
    if len(name) > DNS_LABEL_MAX or not DNS_LABEL.fullmatch(name):
        raise ValueError(f"{name!r} is not a namespace name (a DNS-1123 label: a-z, 0-9, -)")
    return name


NamespaceName = Annotated[str, AfterValidator(_dns_label)]


def is_object_name(name: str) -> bool:
    """Whether Kubernetes accepts `name` as an object's name (a DNS-1123 subdomain)."""
    return len(name) <= DNS_SUBDOMAIN_MAX and DNS_SUBDOMAIN.fullmatch(name) is not None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KubernetesSettings(_Section):
    kubeconfig: Path | None = None
    """Path of a kubeconfig. Unset: in-cluster config inside a pod, else ~/.kube/config."""
    context: str | None = None
    page_size: Count = Field(default=500, ge=1, le=10_000)
    request_timeout_seconds: Number = Field(default=30, gt=0, le=600)


class DatabaseSettings(_Section):
    url: SecretStr | None = None
    """SQLAlchemy URL, e.g. postgresql+psycopg2://user:pass@host:5432/lens. Unset: SQLite."""
    sqlite_path: Path = Path(DEFAULT_SQLITE_PATH)
    auto_migrate: bool = True
    """Upgrade the schema at start. Off: the daemon refuses to start on an old schema."""
    timeout_seconds: Number = Field(default=30, ge=1, le=600)
    """Statement and lock timeout, and the limit of every database call: a database that
    stops answering is an outage, not a hang."""

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("postgresql", "sqlite")):
            raise ValueError("must be a postgresql:// or sqlite:// SQLAlchemy URL")
        return value

    def effective_url(self) -> str:
        if self.url is not None:
            return self.url.get_secret_value()
        return f"sqlite:///{self.sqlite_path}"


class WatchSettings(_Section):
    enabled: bool = True
    """Watch EphemeralRunners between polls, so that short-lived runners are not missed."""
    all_resources: bool = True
    """Also watch AutoscalingRunnerSets and EphemeralRunnerSets (false: polls only)."""
    read_timeout_seconds: Number = Field(default=120, ge=10, le=3600)
    """No byte (not even the ~60 s bookmark) for this long: the connection is dead."""


class WriterSettings(_Section):
    max_pending_objects: Count = Field(default=100_000, ge=100, le=10_000_000)
    """Objects held (merged per object) while the database is slow or down; beyond it,
    the watches relist once there is room again."""
    batch_size: Count = Field(default=500, ge=1, le=10_000)
    """At most this many objects per transaction."""
    history_period_seconds: Number | None = Field(default=None, ge=1, le=86_400)
    """Pool counts and history rows are written at most once per pool per period;
    null: the poll interval."""


class RetentionSettings(_Section):
    """How long rows are kept (SPEC §4.9); null keeps a table's rows forever."""

    enabled: bool = True
    """Delete old rows: by the leader only, at start and then every `period_seconds`."""
    history_days: Count | None = Field(default=90, ge=1, le=36_500)
    """`github_runner_set_history` rows older than this many days."""
    rejects_days: Count | None = Field(default=30, ge=1, le=36_500)
    """`snapshotter_rejects` rows older than this many days (each one is logged)."""
    runner_states_days: Count | None = Field(default=None, ge=1, le=36_500)
    """Deleted runners not updated for this many days, whose run row is written or
    that had no job; null (the default): kept, Lens's processor reads them."""
    period_seconds: Number = Field(default=3600, ge=60, le=7 * 86_400)
    batch_size: Count = Field(default=1000, ge=10, le=100_000)
    """Rows per delete, each its own short transaction."""
    pause_seconds: Number = Field(default=0.1, ge=0, le=60)
    """Pause between two deletes, so that the writer is never kept waiting."""


class FinalizerCaptureSettings(_Section):
    enabled: bool = False
    """Hold finished runners with a finalizer until their final state is stored.
    Needs `patch` on ephemeralrunners; see the README before turning it on."""


def _in_a_pod() -> bool:
    return "KUBERNETES_SERVICE_HOST" in os.environ


JobLabel = Literal["pool_namespace", "pool_name", "repository", "workflow", "completion_source"]


def _distinct(labels: tuple[JobLabel, ...]) -> tuple[JobLabel, ...]:
    if len(set(labels)) != len(labels):
        raise ValueError("a label is named twice")
    return labels


class MetricsSettings(_Section):
    port: Count = Field(default=8080, ge=0, le=65_535)
    """Port of /metrics, /healthz and /readyz; 0: no HTTP server."""
    address: str = Field(default_factory=lambda: "0.0.0.0" if _in_a_pod() else "127.0.0.1")  # noqa: S104 - a pod's port is reached through its Service
    """Address to bind: all interfaces in a pod, loopback elsewhere."""
    job_labels: Annotated[tuple[JobLabel, ...], AfterValidator(_distinct)] = (
        "pool_namespace",
        "pool_name",
        "completion_source",
    )
    """Labels of the job metrics. repository and workflow are opt-in: each value is a
    series (31 with the two histograms), and they may name private repositories."""
    job_series_cap: Count = Field(default=500, ge=1, le=100_000)
    """Distinct label sets of the job metrics; past it, new ones count as `other`."""


def _pod_namespace() -> str:
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    try:
        return path.read_text().strip() or "default"
    except OSError:
        return os.environ.get("POD_NAMESPACE", "default")


class LeaderElectionSettings(_Section):
    """client-go's defaults: lease 15 s, renew deadline 10 s, retry every 2 s."""

    enabled: bool = False
    namespace: str = Field(default_factory=_pod_namespace)
    """Namespace of the Lease: the pod's own namespace, else `default`."""
    lease_name: str | None = None
    """Name of the Lease; null: github-runners-snapshotter, suffixed with cluster_name."""
    identity: str = Field(
        default_factory=lambda: os.environ.get("POD_NAME") or socket.gethostname()
    )
    """Holder identity in the Lease: the POD_NAME environment variable, else the host."""
    lease_duration_seconds: Number = Field(default=15, ge=2, le=600)
    renew_deadline_seconds: Number = Field(default=10, ge=1, le=600)
    retry_period_seconds: Number = Field(default=2, ge=0.1, le=60)
    release_when_database_lost_seconds: Number = Field(default=30, ge=0, le=3600)
    """A leader that cannot reach the database this long gives the Lease up (a
    standby may reach it) and takes it again only once it can; 0: never."""

    @model_validator(mode="after")
    def _ordered(self) -> "LeaderElectionSettings":
        if (
            not self.retry_period_seconds
            < self.renew_deadline_seconds
            < self.lease_duration_seconds
        ):
            raise ValueError(
                "retry_period_seconds < renew_deadline_seconds < lease_duration_seconds must hold"
            )
        return self


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


LevelName = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
FormatName = Literal["text", "json"]
LOG_LEVELS: tuple[str, ...] = get_args(LevelName)
LOG_FORMATS: tuple[str, ...] = get_args(FormatName)
# `debug` and `Debug` mean DEBUG (as the --log-level flag does); stored normalised.
LogLevel = Annotated[LevelName, BeforeValidator(_upper)]
LogFormat = Annotated[FormatName, BeforeValidator(_lower)]


class LoggingSettings(_Section):
    level: LogLevel = "INFO"
    format: LogFormat = "text"


def _regex(pattern: str | None) -> str | None:
    if pattern is None:
        return None
    if not pattern:
        raise ValueError("must be a regular expression, or null for none")
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(f"not a valid regular expression: {e}") from e
    return pattern


class LensSettings(_Section):
    """How the rows are made actionable by Primus Lens itself (README, "Which Lens
    consumes what")."""

    worker_name_pattern: Annotated[str | None, AfterValidator(_regex)] = None
    """A regular expression searched in a runner's name: matching runners are workers
    (runner states, no run rows); the others are launchers. Null: all launchers."""
    collection_tasks: bool = False
    """Write final Lens's collection and completion-sync tasks (`workload_task_state`)
    and run summaries with every run row. The daemon refuses to start when the database
    lacks those tables."""


class WorkflowConfigSettings(_Section):
    """A workflow collection config; upserted at start by (namespace, name, cluster)."""

    name: str = Field(min_length=1, max_length=255)
    runner_set_namespace: str = ""
    runner_set_name: str = ""
    workflow_filter: str | None = None
    branch_filter: str | None = None
    description: str | None = None
    github_owner: str = ""
    github_repo: str = ""
    enabled: bool = True
    file_patterns: tuple[str, ...] = ()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    cluster_name: str = Field(default="", max_length=255)
    interval_seconds: Number = Field(default=10, ge=1, le=3600)
    namespaces: tuple[NamespaceName, ...] = ()
    """Namespaces to read; empty means all namespaces."""
    kubernetes: KubernetesSettings = KubernetesSettings()
    database: DatabaseSettings = DatabaseSettings()
    watch: WatchSettings = WatchSettings()
    writer: WriterSettings = WriterSettings()
    finalizer_capture: FinalizerCaptureSettings = FinalizerCaptureSettings()
    retention: RetentionSettings = RetentionSettings()
    metrics: MetricsSettings = MetricsSettings()
    leader_election: LeaderElectionSettings = LeaderElectionSettings()
    logging: LoggingSettings = LoggingSettings()
    workflow_configs: tuple[WorkflowConfigSettings, ...] = ()
    lens: LensSettings = LensSettings()

    @model_validator(mode="after")
    def _unique_workflow_configs(self) -> "Settings":
        seen: set[tuple[str, str]] = set()
        for config in self.workflow_configs:
            key = (config.runner_set_namespace, config.runner_set_name)
            if key in seen:
                raise ValueError(
                    f"workflow_configs: two configs for runner set {key[0]}/{key[1]} "
                    "(one per runner set and cluster)"
                )
            seen.add(key)
        return self

    @model_validator(mode="after")
    def _valid_lease_name(self) -> "Settings":
        """The Lease name is checked here, not by the API server at run time (a 422
        that would leave every replica a silent standby)."""
        if not self.leader_election.enabled or is_object_name(self.lease_name):
            return self
        if self.leader_election.lease_name:
            raise ValueError(
                f"leader_election.lease_name: {self.lease_name!r} is not a Kubernetes "
                "object name (lowercase letters, digits, '-' and '.', at most 253)"
            )
        raise ValueError(
            f"cluster_name: {self.cluster_name!r} makes the Lease name {self.lease_name!r}, "
            "which is not a Kubernetes object name (lowercase letters, digits, '-' and '.'); "
            "choose such a cluster_name or set leader_election.lease_name"
        )

    @property
    def lease_name(self) -> str:
        if self.leader_election.lease_name:
            return self.leader_election.lease_name
        if self.cluster_name:
            return f"{DEFAULT_LEASE_NAME}-{self.cluster_name}"
        return DEFAULT_LEASE_NAME

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],  # noqa: ARG003
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init values; the environment overrides it.
        return (env_settings, init_settings)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a mapping naming one key twice (PyYAML keeps the
    last one silently, so the first copy of a section would be ignored)."""

    duplicates: list[str]


def _mapping_without_duplicates(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> Any:
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, Hashable) and key in seen:
            line = key_node.start_mark.line + 1
            loader.duplicates.append(f"{key} (line {line}): the key appears twice")
        if isinstance(key, Hashable):
            seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _mapping_without_duplicates,
)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"{path}: cannot read the config file: {e.strerror}"]) from e
    except UnicodeDecodeError as e:
        raise ConfigError([f"{path}: not UTF-8 text (byte {e.start})"]) from e
    loader = _UniqueKeyLoader(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as e:
        raise ConfigError([f"{path}: not valid YAML: {e}"]) from e
    finally:
        loader.dispose()
    if loader.duplicates:
        raise ConfigError([f"{path}: {problem}" for problem in loader.duplicates])
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of keys"])
    return data


def _json_holds(text: str, step: str | int) -> bool:
    """Whether a JSON-valued variable (a whole section or list) holds `step`."""
    try:
        value = json.loads(text)
    except ValueError:
        return False
    if isinstance(value, dict):
        return str(step) in value
    return isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value)


def environment_source(loc: tuple[str | int, ...], environ: Mapping[str, str]) -> str | None:
    """The SNAPSHOTTER_* variable that supplied the value at `loc`, or None (the file).

    pydantic's errors carry only the field path, merged from both sources. The
    environment wins where both set a value, so the deepest variable naming a prefix
    of the path is the source: the path itself (SNAPSHOTTER_DATABASE__URL), or a
    JSON-valued section or list holding the path's next step (SNAPSHOTTER_NAMESPACES).
    Names are matched without case, as pydantic-settings reads them.
    """
    names = {name.upper(): name for name in environ if name.upper().startswith(ENV_PREFIX)}
    for depth in range(len(loc), 0, -1):
        variable = names.get(ENV_PREFIX + "__".join(str(part) for part in loc[:depth]).upper())
        if variable is None:
            continue
        if depth == len(loc) or _json_holds(environ[variable], loc[depth]):
            return variable
    return None


def _problem(error: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(config)"
    variable = environment_source(tuple(error["loc"]), environ)
    where = f"environment variable {variable}" if variable else key
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown {'setting' if variable else 'key'}"
    value = error.get("input")
    shown = "" if isinstance(value, dict | list) or "url" in key else f" (got {value!r})"
    return f"{where}: {error['msg']}{shown}"


CONFIG_PATH_VARIABLE = ENV_PREFIX + "CONFIG"


def _environment_problem(error: SettingsError) -> str:
    """pydantic-settings' error for a complex value that is not JSON, as one line."""
    field = re.search(r'field "(\w+)"', str(error))
    where = f"environment variable {ENV_PREFIX}{field.group(1).upper()}" if field else "environment"
    cause = f" ({error.__cause__})" if error.__cause__ else ""
    return f"{where}: not valid JSON{cause}"


def _unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """SNAPSHOTTER_* variables that name no setting (pydantic-settings ignores them)."""
    known = {name.upper() for name in Settings.model_fields}
    problems = []
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or variable == CONFIG_PATH_VARIABLE:
            continue
        top = variable.removeprefix(ENV_PREFIX).split("__", 1)[0]
        if top not in known:
            problems.append(f"environment variable {variable}: unknown setting")
    return problems


def load_settings(path: Path | None = None) -> Settings:
    """Settings from `path` (if any) and the environment; ConfigError lists every problem."""
    problems = _unknown_environment(os.environ)
    values = _read_yaml(path) if path is not None else {}
    try:
        settings = Settings(**values)
    except ValidationError as e:
        raise ConfigError(problems + [_problem(error, os.environ) for error in e.errors()]) from e
    except SettingsError as e:  # an environment variable that is not valid JSON
        raise ConfigError([*problems, _environment_problem(e)]) from e
    if problems:
        raise ConfigError(problems)
    return settings
