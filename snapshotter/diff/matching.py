"""Which workflow collection configs a finished runner belongs to (SPEC §3.5).

A filter is an exact string, or a shell-style glob when it contains `*`, `?` or `[`.
Patterns are compiled once per config load; a pattern that does not compile makes
its config match nothing, and the caller logs the error once.
"""

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class WorkflowConfig:
    """The columns of `github_workflow_configs` that decide matching."""

    id: int
    name: str
    runner_set_namespace: str
    runner_set_name: str
    cluster_name: str
    workflow_filter: str | None
    branch_filter: str | None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Filter:
    text: str
    regex: re.Pattern[str] | None

    def matches(self, value: str) -> bool:
        if self.regex is None:
            return value == self.text
        return self.regex.fullmatch(value) is not None


def _bracket_problem(text: str) -> str | None:
    """fnmatch silently treats an unclosed `[` as a literal and a reversed range as
    "never matches"; both are almost certainly typos in a config, so report them."""
    i = 0
    while (start := text.find("[", i)) >= 0:
        j = start + 1
        if j < len(text) and text[j] == "!":
            j += 1
        if j < len(text) and text[j] == "]":
            j += 1
        end = text.find("]", j)
        if end < 0:
            return f"unclosed '[' at position {start}"
        body = text[j:end]
        for k in range(1, len(body) - 1):
            if body[k] == "-" and body[k - 1] > body[k + 1]:
                return f"reversed range '{body[k - 1]}-{body[k + 1]}'"
        i = end + 1
    return None


def compile_filter(text: str) -> Filter:
    """An exact or glob filter; raises ValueError when the glob is malformed."""
    if not _GLOB_CHARS.intersection(text):
        return Filter(text, None)
    problem = _bracket_problem(text)
    if problem:
        raise ValueError(f"bad pattern {text!r}: {problem}")
    try:
        # fnmatch.translate anchors with \Z; fullmatch keeps the semantics of fnmatchcase.
        return Filter(text, re.compile(fnmatch.translate(text)))
    except re.error as e:
        raise ValueError(f"bad pattern {text!r}: {e}") from e


@dataclass(frozen=True, slots=True)
class CompiledConfig:
    config: WorkflowConfig
    workflow: Filter | None
    branch: Filter | None
    error: str | None = None


def compile_config(config: WorkflowConfig) -> CompiledConfig:
    """Compile both filters; a bad one is recorded in `error` and disables the config."""
    try:
        workflow = compile_filter(config.workflow_filter) if config.workflow_filter else None
        branch = compile_filter(config.branch_filter) if config.branch_filter else None
    except ValueError as e:
        return CompiledConfig(config, None, None, error=f"config {config.name!r}: {e}")
    return CompiledConfig(config, workflow, branch)


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What a config can filter on, for one finished runner."""

    runner_set_namespace: str | None
    runner_set_name: str | None
    workflow_names: tuple[str, ...]  # workflow name, file, path, job display name
    workflow_known: bool
    branch: str | None


def _scope_matches(wanted: str, actual: str | None) -> bool:
    return not wanted or wanted == actual


def config_matches(compiled: CompiledConfig, facts: RunFacts, *, cluster_name: str) -> bool:
    config = compiled.config
    if compiled.error or not config.enabled:
        return False
    if not (
        _scope_matches(config.runner_set_namespace, facts.runner_set_namespace)
        and _scope_matches(config.runner_set_name, facts.runner_set_name)
        and _scope_matches(config.cluster_name, cluster_name)
    ):
        return False
    workflow = compiled.workflow
    if workflow and facts.workflow_known and not any(map(workflow.matches, facts.workflow_names)):
        return False
    return not (compiled.branch and facts.branch and not compiled.branch.matches(facts.branch))


def matching_configs(
    configs: Iterable[CompiledConfig], facts: RunFacts, *, cluster_name: str
) -> list[WorkflowConfig]:
    return [c.config for c in configs if config_matches(c, facts, cluster_name=cluster_name)]
