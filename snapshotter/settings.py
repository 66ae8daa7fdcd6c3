"""Configuration: one YAML file, overridden by `SNAPSHOTTER_*` environment variables.

Validated by pydantic; every problem becomes one message naming its key, and the
CLI exits 2 with all of them. Nothing here runs at import: `load_settings` builds a
frozen Settings once and the CLI passes plain values down.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from snapshotter.errors import ConfigError

ENV_PREFIX = "SNAPSHOTTER_"
DEFAULT_SQLITE_PATH = "snapshotter.db"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KubernetesSettings(_Section):
    kubeconfig: Path | None = None
    """Path of a kubeconfig. Unset: in-cluster config inside a pod, else ~/.kube/config."""
    context: str | None = None
    page_size: int = Field(default=500, ge=1, le=10_000)
    request_timeout_seconds: float = Field(default=30, gt=0, le=600)


class DatabaseSettings(_Section):
    url: SecretStr | None = None
    """SQLAlchemy URL, e.g. postgresql+psycopg2://user:pass@host:5432/lens. Unset: SQLite."""
    sqlite_path: Path = Path(DEFAULT_SQLITE_PATH)
    auto_migrate: bool = True
    """Upgrade the schema at start. Off: the daemon refuses to start on an old schema."""
    timeout_seconds: float = Field(default=30, ge=1, le=600)
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

    def masked_url(self) -> str:
        """The URL with any password replaced, for logs."""
        url = self.effective_url()
        scheme, sep, rest = url.partition("://")
        credentials, at, host = rest.rpartition("@")
        if not at or ":" not in credentials:
            return url
        user = credentials.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}"


class WatchSettings(_Section):
    enabled: bool = True
    """Watch EphemeralRunners between polls, so that short-lived runners are not missed."""
    all_resources: bool = True
    """Also watch AutoscalingRunnerSets and EphemeralRunnerSets (false: polls only)."""
    read_timeout_seconds: float = Field(default=120, ge=10, le=3600)
    """No byte (not even the ~60 s bookmark) for this long: the connection is dead."""


class WriterSettings(_Section):
    max_pending_objects: int = Field(default=100_000, ge=100, le=10_000_000)
    """Objects held (merged per object) while the database is slow or down; beyond it,
    the watches relist once there is room again."""
    batch_size: int = Field(default=500, ge=1, le=10_000)
    """At most this many objects per transaction."""
    history_period_seconds: float | None = Field(default=None, ge=1, le=86_400)
    """Pool counts and history rows are written at most once per pool per period;
    null: the poll interval."""


class FinalizerCaptureSettings(_Section):
    enabled: bool = False
    """Hold finished runners with a finalizer until their final state is stored.
    Needs `patch` on ephemeralrunners; see the README before turning it on."""


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


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
    interval_seconds: float = Field(default=10, ge=1, le=3600)
    namespaces: tuple[str, ...] = ()
    """Namespaces to read; empty means all namespaces."""
    kubernetes: KubernetesSettings = KubernetesSettings()
    database: DatabaseSettings = DatabaseSettings()
    watch: WatchSettings = WatchSettings()
    writer: WriterSettings = WriterSettings()
    finalizer_capture: FinalizerCaptureSettings = FinalizerCaptureSettings()
    logging: LoggingSettings = LoggingSettings()
    workflow_configs: tuple[WorkflowConfigSettings, ...] = ()

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


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"{path}: cannot read the config file: {e.strerror}"]) from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError([f"{path}: not valid YAML: {e}"]) from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of keys"])
    return data


def _problem(error: Mapping[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(config)"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    value = error.get("input")
    shown = "" if isinstance(value, dict | list) or "url" in key else f" (got {value!r})"
    return f"{key}: {error['msg']}{shown}"


CONFIG_PATH_VARIABLE = ENV_PREFIX + "CONFIG"


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
        raise ConfigError(problems + [_problem(error) for error in e.errors()]) from e
    if problems:
        raise ConfigError(problems)
    return settings
