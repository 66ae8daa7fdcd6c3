"""Raw Kubernetes objects (plain dicts) -> records, tolerant of ARC 0.9-0.15 shapes.

A missing `status`, absent phases, `failures` as `true` or timestamps, ARS
`status.state` vs `status.phase` and absent count fields are all normal. A field of
the wrong JSON type counts as absent and yields a warning; only an object without
usable metadata raises ParseError. Warnings are returned, not logged: this module
does no I/O.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from snapshotter.errors import ParseError
from snapshotter.model import github_url, pod_resources
from snapshotter.model.records import (
    EphemeralRunnerRecord,
    EphemeralRunnerSetRecord,
    Identity,
    RunAnnotations,
    RunnerSetRecord,
    SetKey,
)

RawObject = Mapping[str, Any]
R = TypeVar("R")

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

LABEL_SCALE_SET_NAME = "actions.github.com/scale-set-name"
LABEL_SCALE_SET_NAMESPACE = "actions.github.com/scale-set-namespace"
ANNOTATION_SCALE_SET_ID = "runner-scale-set-id"
ANNOTATION_SCALE_SET_NAME = "actions.github.com/runner-scale-set-name"
RUN_ANNOTATION_PREFIX = "actions.github.com/"


@dataclass(frozen=True, slots=True)
class Parsed(Generic[R]):
    record: R
    warnings: tuple[str, ...] = ()


@dataclass(slots=True)
class _Reader:
    """Typed field access that turns a wrong type into "absent" plus a warning."""

    warnings: list[str] = field(default_factory=list)

    def _wrong(self, where: str, expected: str, value: object) -> None:
        self.warnings.append(f"{where}: expected {expected}, got {type(value).__name__}")

    def mapping(self, obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
        value = obj.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self._wrong(where, "an object", value)
            return {}
        return value

    def string(self, obj: Mapping[str, Any], key: str, where: str) -> str | None:
        value = obj.get(key)
        if value is None or isinstance(value, str):
            return value
        self._wrong(where, "a string", value)
        return None

    def integer(
        self, obj: Mapping[str, Any], key: str, where: str, *, maximum: int = INT64_MAX
    ) -> int | None:
        value = obj.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self._wrong(where, "an integer", value)
            return None
        if not 0 <= value <= maximum:
            self.warnings.append(f"{where}: {value} is out of range 0..{maximum}")
            return None
        return value

    def boolean(self, obj: Mapping[str, Any], key: str, where: str) -> bool | None:
        value = obj.get(key)
        if value is None or isinstance(value, bool):
            return value
        self._wrong(where, "a boolean", value)
        return None

    def timestamp(self, obj: Mapping[str, Any], key: str, where: str) -> datetime | None:
        value = self.string(obj, key, where)
        if not value:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.warnings.append(f"{where}: {value!r} is not an RFC 3339 time")
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def identity_of(raw: object) -> Identity | None:
    """uid, namespace, name and resourceVersion, or None when any is missing."""
    if not isinstance(raw, Mapping):
        return None
    meta = raw.get("metadata")
    if not isinstance(meta, Mapping):
        return None
    values = [meta.get(k) for k in ("uid", "namespace", "name", "resourceVersion")]
    strings = [v for v in values if isinstance(v, str) and v]
    if len(strings) != len(values):
        return None
    uid, namespace, name, rv = strings
    return Identity(uid=uid, namespace=namespace, name=name, resource_version=rv)


def _identity_or_raise(raw: object, kind: str) -> Identity:
    ident = identity_of(raw)
    if ident is not None:
        return ident
    meta = raw.get("metadata") if isinstance(raw, Mapping) else None
    name = meta.get("name") if isinstance(meta, Mapping) else None
    ref = str(name) if name else "<unnamed>"
    raise ParseError(kind, ref, "metadata.uid, namespace, name or resourceVersion is missing")


def _labels(meta: Mapping[str, Any], reader: _Reader, key: str) -> Mapping[str, Any]:
    values = reader.mapping(meta, key, f"metadata.{key}")
    return {k: v for k, v in values.items() if isinstance(v, str)}


def _scale_set_from_labels(labels: Mapping[str, Any]) -> SetKey | None:
    name = labels.get(LABEL_SCALE_SET_NAME)
    namespace = labels.get(LABEL_SCALE_SET_NAMESPACE)
    if name and namespace:
        return SetKey(namespace, name)
    return None


def _controller_owner_uid(meta: Mapping[str, Any], kind: str) -> str | None:
    owners = meta.get("ownerReferences")
    if not isinstance(owners, list):
        return None
    for owner in owners:
        if isinstance(owner, Mapping) and owner.get("kind") == kind:
            uid = owner.get("uid")
            if isinstance(uid, str) and uid:
                return uid
    return None


def _digits(value: str | None) -> int | None:
    """Annotations are strings: integers count only when they are all digits."""
    if value and value.isascii() and value.isdigit() and int(value) <= INT64_MAX:
        return int(value)
    return None


def parse_runner_set(raw: RawObject) -> Parsed[RunnerSetRecord]:
    """AutoscalingRunnerSet -> RunnerSetRecord."""
    ident = _identity_or_raise(raw, "AutoscalingRunnerSet")
    r = _Reader()
    meta = r.mapping(raw, "metadata", "metadata")
    spec = r.mapping(raw, "spec", "spec")
    status = r.mapping(raw, "status", "status")
    annotations = _labels(meta, r, "annotations")
    url = r.string(spec, "githubConfigUrl", "spec.githubConfigUrl")
    scope = None
    if url:
        try:
            scope = github_url.parse_github_config_url(url)
        except github_url.InvalidConfigUrl as e:
            r.warnings.append(f"spec.githubConfigUrl {url!r}: {e}")
    record = RunnerSetRecord(
        identity=ident,
        creation_timestamp=r.timestamp(meta, "creationTimestamp", "metadata.creationTimestamp"),
        deletion_timestamp=r.timestamp(meta, "deletionTimestamp", "metadata.deletionTimestamp"),
        github_config_url=url,
        github_config_secret=r.string(spec, "githubConfigSecret", "spec.githubConfigSecret"),
        runner_group=r.string(spec, "runnerGroup", "spec.runnerGroup"),
        min_runners=r.integer(spec, "minRunners", "spec.minRunners", maximum=INT32_MAX) or 0,
        max_runners=r.integer(spec, "maxRunners", "spec.maxRunners", maximum=INT32_MAX) or 0,
        scope=scope,
        runner_scale_set_id=_digits(annotations.get(ANNOTATION_SCALE_SET_ID)),
        runner_scale_set_name=(
            r.string(spec, "runnerScaleSetName", "spec.runnerScaleSetName")
            or annotations.get(ANNOTATION_SCALE_SET_NAME)
        ),
        # 0.14+ writes status.phase; <= 0.13 declared status.state (always "").
        phase=(
            r.string(status, "phase", "status.phase")
            or r.string(status, "state", "status.state")
            or None
        ),
    )
    return Parsed(record, tuple(r.warnings))


def parse_ephemeral_runner_set(raw: RawObject) -> Parsed[EphemeralRunnerSetRecord]:
    """EphemeralRunnerSet -> EphemeralRunnerSetRecord."""
    ident = _identity_or_raise(raw, "EphemeralRunnerSet")
    r = _Reader()
    meta = r.mapping(raw, "metadata", "metadata")
    spec = r.mapping(raw, "spec", "spec")
    record = EphemeralRunnerSetRecord(
        identity=ident,
        creation_timestamp=r.timestamp(meta, "creationTimestamp", "metadata.creationTimestamp"),
        deletion_timestamp=r.timestamp(meta, "deletionTimestamp", "metadata.deletionTimestamp"),
        replicas=r.integer(spec, "replicas", "spec.replicas", maximum=INT32_MAX) or 0,
        owner_uid=_controller_owner_uid(meta, "AutoscalingRunnerSet"),
        scale_set=_scale_set_from_labels(_labels(meta, r, "labels")),
    )
    return Parsed(record, tuple(r.warnings))


def _run_annotations(annotations: Mapping[str, Any]) -> RunAnnotations:
    def get(key: str) -> str | None:
        value = annotations.get(RUN_ANNOTATION_PREFIX + key)
        return value or None

    return RunAnnotations(
        run_id=_digits(get("run-id")),
        job_id=_digits(get("job-id")),
        run_number=_digits(get("run-number")),
        sha=get("sha"),
        workflow=get("workflow"),
        branch=get("branch"),
    )


def _finalizers(meta: Mapping[str, Any]) -> tuple[str, ...] | None:
    value = meta.get("finalizers")
    if not isinstance(value, list):
        return None
    return tuple(f for f in value if isinstance(f, str))


def _pod_failures(status: Mapping[str, Any], reader: _Reader) -> int:
    # Values are `true` (<= 0.11) or RFC 3339 times (0.12+); only the count matters.
    return len(reader.mapping(status, "failures", "status.failures"))


def _pod_resources(spec: Mapping[str, Any], reader: _Reader) -> pod_resources.PodResources | None:
    # spec.spec is the runner pod's template (a PodSpec)
    if spec.get("spec") is None:
        return None
    pod = reader.mapping(spec, "spec", "spec.spec")
    return pod_resources.pod_resources(pod, reader.warnings)


def parse_ephemeral_runner(raw: RawObject) -> Parsed[EphemeralRunnerRecord]:
    """EphemeralRunner -> EphemeralRunnerRecord."""
    ident = _identity_or_raise(raw, "EphemeralRunner")
    r = _Reader()
    meta = r.mapping(raw, "metadata", "metadata")
    spec = r.mapping(raw, "spec", "spec")
    status = r.mapping(raw, "status", "status")
    record = EphemeralRunnerRecord(
        identity=ident,
        creation_timestamp=r.timestamp(meta, "creationTimestamp", "metadata.creationTimestamp"),
        deletion_timestamp=r.timestamp(meta, "deletionTimestamp", "metadata.deletionTimestamp"),
        scale_set=_scale_set_from_labels(_labels(meta, r, "labels")),
        owner_set_uid=_controller_owner_uid(meta, "EphemeralRunnerSet"),
        spec_runner_set_name=r.string(spec, "runnerSetName", "spec.runnerSetName"),
        phase=r.string(status, "phase", "status.phase") or None,
        ready=r.boolean(status, "ready", "status.ready"),
        reason=r.string(status, "reason", "status.reason") or None,
        message=r.string(status, "message", "status.message") or None,
        runner_id=r.integer(status, "runnerId", "status.runnerId") or None,
        runner_name=r.string(status, "runnerName", "status.runnerName") or None,
        job_id=r.string(status, "jobId", "status.jobId") or None,
        job_request_id=r.integer(status, "jobRequestId", "status.jobRequestId") or None,
        job_repository=r.string(status, "jobRepositoryName", "status.jobRepositoryName") or None,
        job_workflow_ref=r.string(status, "jobWorkflowRef", "status.jobWorkflowRef") or None,
        workflow_run_id=r.integer(status, "workflowRunId", "status.workflowRunId") or None,
        job_display_name=r.string(status, "jobDisplayName", "status.jobDisplayName") or None,
        pod_failures=_pod_failures(status, r),
        annotations=_run_annotations(_labels(meta, r, "annotations")),
        finalizers=_finalizers(meta),
        resources=_pod_resources(spec, r),
    )
    return Parsed(record, tuple(r.warnings))
