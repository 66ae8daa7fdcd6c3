"""A model of the Kubernetes side for interleaving tests: objects, their history by
resourceVersion, and what a list or a watch from some point would show.

It is plain Python (no API server): the model-based tests use it to generate every
interleaving of lists, watch events, replays and gaps quickly, and to know what the
tables must say in the end. The real API server is exercised in tests/e2e/.
"""

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from tests.support import arc_objects as arc

EventType = Literal["ADDED", "MODIFIED", "DELETED"]
BASE_TIME = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ModelEvent:
    rv: int
    type: EventType
    object: dict[str, Any]

    @property
    def uid(self) -> str:
        uid: str = self.object["metadata"]["uid"]
        return uid


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A complete list of EphemeralRunners at one resourceVersion."""

    rv: int
    items: list[dict[str, Any]]


@dataclass
class ClusterModel:
    """One pool (AutoscalingRunnerSet + EphemeralRunnerSet) and its runners."""

    rv: int = 10
    runners: dict[str, dict[str, Any]] = field(default_factory=dict)  # live, by uid
    log: list[ModelEvent] = field(default_factory=list)  # runner events, in RV order
    jobs: dict[str, str] = field(default_factory=dict)  # uid -> job id, once assigned
    _names: "itertools.count[int]" = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.ars = arc.runner_set(uid="ars", rv="1")
        self.ers = arc.ephemeral_runner_set(self.ars, uid="ers", rv="2", replicas=1)

    def _next(self, obj: dict[str, Any], kind: EventType) -> dict[str, Any]:
        self.rv += 1
        obj = arc.bumped(obj, str(self.rv))
        self.log.append(ModelEvent(self.rv, kind, obj))
        return obj

    def create(self) -> str:
        n = next(self._names)
        uid = f"runner-{n}"
        obj = arc.ephemeral_runner(
            self.ers,
            name=f"pool-runner-{n:05d}",
            uid=uid,
            status={},
            created=(BASE_TIME + timedelta(seconds=n)).isoformat(),
        )
        self.runners[uid] = self._next(obj, "ADDED")
        return uid

    def modify(self, uid: str, **overrides: Any) -> None:
        self.runners[uid] = self._next(arc.merged(self.runners[uid], overrides), "MODIFIED")

    def start_job(self, uid: str) -> None:
        job_id = f"job-{uid}"
        self.jobs[uid] = job_id
        self.modify(uid, status={**arc.JOB_STATUS, "jobId": job_id})

    def set_phase(self, uid: str, phase: str) -> None:
        self.modify(uid, status={"phase": phase, "ready": phase == "Running"})

    def start_deletion(self, uid: str, at: datetime) -> None:
        self.modify(uid, metadata={"deletionTimestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ")})

    def delete(self, uid: str) -> None:
        obj = self.runners.pop(uid)
        self._next(obj, "DELETED")

    def snapshot(self) -> Snapshot:
        return Snapshot(self.rv, [dict(o) for o in self.runners.values()])

    def events_after(self, index: int) -> list[ModelEvent]:
        return self.log[index:]

    def has_job(self, uid: str) -> bool:
        return uid in self.jobs
