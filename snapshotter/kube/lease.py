"""A coordination.k8s.io/v1 Lease as a lock record: read, create, update.

Updates carry the resourceVersion that was read, so two candidates racing for the
Lease cannot both win: the API server answers the loser 409 (KubeConflict). The
election logic itself is in `ops.leader`; the official client's `leaderelection`
module is not used (it neither releases the Lease on shutdown nor stops leading
when its callback ends).
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s

from snapshotter.errors import KubeNotFound
from snapshotter.kube.errors import translated_errors

MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    holder: str  # "" when released
    lease_duration_seconds: int
    acquire_time: datetime | None
    renew_time: datetime | None
    transitions: int
    resource_version: str | None = None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _micro(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime(MICRO_TIME) if value else None


def _record(body: dict[str, Any]) -> LeaseRecord:
    spec = body.get("spec") or {}
    return LeaseRecord(
        holder=spec.get("holderIdentity") or "",
        lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=_time(spec.get("acquireTime")),
        renew_time=_time(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=(body.get("metadata") or {}).get("resourceVersion"),
    )


class LeaseClient:
    """One named Lease in one namespace."""

    def __init__(self, api_client: Any, *, namespace: str, name: str, timeout: float) -> None:
        self.api: Any = k8s.CoordinationV1Api(api_client)  # raw JSON bodies, not models
        self.namespace, self.name, self.timeout = namespace, name, timeout

    def _body(self, record: LeaseRecord) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if record.resource_version:
            metadata["resourceVersion"] = record.resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": record.holder,
                "leaseDurationSeconds": record.lease_duration_seconds,
                "acquireTime": _micro(record.acquire_time),
                "renewTime": _micro(record.renew_time),
                "leaseTransitions": record.transitions,
            },
        }

    def get(self) -> LeaseRecord | None:
        try:
            with translated_errors(f"get lease {self.namespace}/{self.name}"):
                response = self.api.read_namespaced_lease(
                    self.name,
                    self.namespace,
                    _preload_content=False,
                    _request_timeout=self.timeout,
                )
                return _record(json.loads(response.data))
        except KubeNotFound:
            return None

    def create(self, record: LeaseRecord) -> LeaseRecord:
        with translated_errors(f"create lease {self.namespace}/{self.name}"):
            response = self.api.create_namespaced_lease(
                self.namespace,
                self._body(record),
                _preload_content=False,
                _request_timeout=self.timeout,
            )
            return _record(json.loads(response.data))

    def update(self, record: LeaseRecord) -> LeaseRecord:
        """Replace the Lease if it is still at `record.resource_version`."""
        with translated_errors(f"update lease {self.namespace}/{self.name}"):
            response = self.api.replace_namespaced_lease(
                self.name,
                self.namespace,
                self._body(record),
                _preload_content=False,
                _request_timeout=self.timeout,
            )
            return _record(json.loads(response.data))
