"""What Kubernetes showed about one object, coalesced (SPEC §4.4, §7).

An `Observed` is what the pending queue holds per object while the database is slow
or down, like client-go's DeltaFIFO holds deltas per key: the newest state (by
resourceVersion) plus what must survive from earlier states, namely the first
sighting of the job fields with its time, the first terminal phase, and a deletion.
`merged` is commutative and associative, so the result does not depend on how
observations were batched or in which order they arrived. `Vanished` is the absence
of a persisted object from a complete list.

Every fact keeps the time it was first received (a list's items count from when
the list began): the completion rule asks which of its signals came first.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from snapshotter.model.records import EphemeralRunnerRecord
from snapshotter.model.versions import Version

R = TypeVar("R")
T = TypeVar("T", "JobSighting", "Deleting")
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True, slots=True)
class JobSighting:
    """The job fields the ARC listener wrote (all at once, never cleared), and when
    they were first received."""

    at: datetime
    job_id: str | None
    job_request_id: int | None
    job_repository: str | None
    job_workflow_ref: str | None
    job_workflow_run_id: int | None
    job_display_name: str | None

    @classmethod
    def of(cls, record: EphemeralRunnerRecord, at: datetime) -> "JobSighting | None":
        if not record.has_job:
            return None
        return cls(
            at=at,
            job_id=record.job_id,
            job_request_id=record.job_request_id,
            job_repository=record.job_repository,
            job_workflow_ref=record.job_workflow_ref,
            job_workflow_run_id=record.workflow_run_id,
            job_display_name=record.job_display_name,
        )


@dataclass(frozen=True, slots=True)
class Deleting:
    """The object was first seen being deleted (with a deletionTimestamp) then."""

    at: datetime
    timestamp: datetime  # metadata.deletionTimestamp, the API server's clock


@dataclass(frozen=True, slots=True)
class Observed(Generic[R]):
    """One object as observed, possibly over several events (see the module doc)."""

    resource: str  # plural of the resource
    uid: str
    record: R  # the newest state seen
    version: Version  # of `record`
    at: datetime  # when `record` was received
    deleted_at: datetime | None = None  # a DELETED event was received then
    job: JobSighting | None = None  # runners: the first sighting of job fields
    terminal_at: datetime | None = None  # runners: first seen in a terminal phase
    deleting: Deleting | None = None  # first seen with a deletionTimestamp
    first_at: datetime | None = None  # when it was first received (None: `at`)

    @property
    def first_received(self) -> datetime:
        return self.first_at or self.at

    @property
    def key(self) -> tuple[str, str]:
        return (self.resource, self.uid)


def sighting(
    resource: str,
    uid: str,
    record: R,
    *,
    version: Version,
    at: datetime,
    deleted: bool = False,
) -> Observed[R]:
    """One observation (a list item or a watch event) as an Observed."""
    job, terminal = None, None
    if isinstance(record, EphemeralRunnerRecord):
        job = JobSighting.of(record, at)
        terminal = at if record.phase in TERMINAL_PHASES else None
    timestamp = getattr(record, "deletion_timestamp", None)
    return Observed(
        resource,
        uid,
        record,
        version,
        at,
        deleted_at=at if deleted else None,
        job=job,
        terminal_at=terminal,
        deleting=Deleting(at, timestamp) if timestamp is not None else None,
    )


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _first(a: T | None, b: T | None) -> T | None:
    """The sighting received first (`at`), or the one there is."""
    if a is None or b is None:
        return a or b
    return a if a.at <= b.at else b


def merged(a: Observed[R], b: Observed[R]) -> Observed[R]:
    """Both observations of one object as one: the newer state, the earliest facts."""
    newest = b if b.version.newer_than(a.version) else a
    return Observed(
        newest.resource,
        newest.uid,
        newest.record,
        newest.version,
        newest.at,
        deleted_at=_earliest(a.deleted_at, b.deleted_at),
        job=_first(a.job, b.job),
        terminal_at=_earliest(a.terminal_at, b.terminal_at),
        deleting=_first(a.deleting, b.deleting),
        first_at=min(a.first_received, b.first_received),
    )


@dataclass(frozen=True, slots=True)
class Vanished:
    """A persisted object absent from a complete list taken at `listed`."""

    resource: str
    uid: str
    listed: Version
    at: datetime  # when that list was taken

    @property
    def key(self) -> tuple[str, str]:
        return (self.resource, self.uid)


Input = Observed[Any] | Vanished
