"""A model of the Kubernetes side for interleaving tests: the ARC objects, their
history by resourceVersion, and what a list or a watch from some point would show.

It is plain Python (no API server): the model-based tests use it to generate every
interleaving of lists, watch events, replays and gaps quickly, and it is the truth
the oracle (tests/support/oracle.py) compares the tables with. Pools
(AutoscalingRunnerSet + EphemeralRunnerSet) come and go, runner names can be reused
by new uids (ARC generates names; a deleted runner's name is free again), and the
resourceVersions can be opaque strings (a storage other than etcd), for which the
sync engine falls back to arrival order. The real API server is exercised in
tests/e2e/.
"""

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from tests.support import arc_objects as arc

EventType = Literal["ADDED", "MODIFIED", "DELETED"]
BASE_TIME = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
NAMESPACE = "arc-runners"
RUNNERS = "ephemeralrunners"
POOLS = "autoscalingrunnersets"
POOL_SETS = "ephemeralrunnersets"
RESOURCES = (POOLS, POOL_SETS, RUNNERS)
TERMINAL = ("Succeeded", "Failed")


def _stamp(at: datetime) -> str:
    """A Kubernetes timestamp: whole seconds, UTC."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class ModelEvent:
    resource: str
    seq: int  # the order of the change in the cluster (etcd's revision)
    type: EventType
    object: dict[str, Any]

    @property
    def uid(self) -> str:
        uid: str = self.object["metadata"]["uid"]
        return uid

    @property
    def rv(self) -> str:
        rv: str = self.object["metadata"]["resourceVersion"]
        return rv


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Complete lists of every resource at one resourceVersion."""

    rv: str
    seq: int
    items: dict[str, list[dict[str, Any]]]

    def uids(self, resource: str) -> set[str]:
        return {o["metadata"]["uid"] for o in self.items[resource]}


@dataclass(slots=True)
class Pool:
    """One AutoscalingRunnerSet incarnation and its EphemeralRunnerSet."""

    uid: str
    name: str
    ars: dict[str, Any]
    ers: dict[str, Any]


@dataclass
class ClusterModel:
    """Pools and their runners, with every change in one log (etcd's order)."""

    opaque: bool = False  # resourceVersions that are not integers
    seq: int = 10
    pools: dict[str, Pool] = field(default_factory=dict)  # live, by ARS uid
    runners: dict[str, dict[str, Any]] = field(default_factory=dict)  # live, by uid
    pool_of: dict[str, str] = field(default_factory=dict)  # runner uid -> ARS uid, ever
    log: list[ModelEvent] = field(default_factory=list)
    jobs: dict[str, str] = field(default_factory=dict)  # runner uid -> job id, once assigned
    names: dict[str, str] = field(default_factory=dict)  # runner uid -> name, ever
    _uids: "itertools.count[int]" = field(default_factory=itertools.count)

    # -- resourceVersions --------------------------------------------------------

    def rv_of(self, seq: int) -> str:
        # An opaque RV still changes with every write, but says nothing about order.
        return f"v{seq:x}z" if self.opaque else str(seq)

    def _next(self, resource: str, obj: dict[str, Any], kind: EventType) -> dict[str, Any]:
        self.seq += 1
        obj = arc.bumped(obj, self.rv_of(self.seq))
        self.log.append(ModelEvent(resource, self.seq, kind, obj))
        return obj

    # -- pools -------------------------------------------------------------------

    def _created(self) -> str:
        """A creationTimestamp on the cluster's clock (one second per change)."""
        return _stamp(BASE_TIME + timedelta(seconds=self.seq + 1))

    def create_pool(self, tag: str = "") -> str:
        """A pool with a name of its own (pool names are not reused here; runner
        names are); `tag` goes into the name."""
        n = next(self._uids)
        uid, name = f"ars-{n}", f"pool-{n}{tag}"
        created = self._created()
        ars = arc.runner_set(name=name, namespace=NAMESPACE, uid=uid, rv="1", created=created)
        ars = self._next(POOLS, ars, "ADDED")
        ers = arc.ephemeral_runner_set(
            ars, name=f"{name}-e{n}", uid=f"ers-{n}", rv="1", created=self._created()
        )
        ers = self._next(POOL_SETS, ers, "ADDED")
        self.pools[uid] = Pool(uid, name, ars, ers)
        return uid

    def delete_pool(self, uid: str, at: datetime) -> None:
        """As ARC tears a pool down: its runners, then the EphemeralRunnerSet, then the
        AutoscalingRunnerSet."""
        for runner in [r for r, p in self.pool_of.items() if p == uid and r in self.runners]:
            self.delete(runner, at)
        pool = self.pools.pop(uid)
        self._next(POOL_SETS, pool.ers, "DELETED")
        self._next(POOLS, pool.ars, "DELETED")

    # -- runners -----------------------------------------------------------------

    def free_names(self, pool_uid: str) -> list[str]:
        """Names of this pool's runners that are gone (ARC may generate one again)."""
        live = {o["metadata"]["name"] for o in self.runners.values()}
        return sorted(
            {n for u, n in self.names.items() if self.pool_of[u] == pool_uid} - live,
        )

    def create(self, pool_uid: str, *, name: str | None = None) -> str:
        n = next(self._uids)
        uid = f"runner-{n}"
        pool = self.pools[pool_uid]
        name = name or f"{pool.name}-runner-{n:05d}"
        obj = arc.ephemeral_runner(
            pool.ers,
            name=name,
            uid=uid,
            status={},
            created=self._created(),
        )
        obj["metadata"]["namespace"] = NAMESPACE
        self.runners[uid] = self._next(RUNNERS, obj, "ADDED")
        self.pool_of[uid] = pool_uid
        self.names[uid] = name
        return uid

    def modify(self, uid: str, **overrides: Any) -> None:
        self.runners[uid] = self._next(
            RUNNERS, arc.merged(self.runners[uid], overrides), "MODIFIED"
        )

    def start_job(self, uid: str) -> None:
        job_id = f"job-{uid}"
        self.jobs[uid] = job_id
        self.modify(uid, status={**arc.JOB_STATUS, "jobId": job_id})

    def set_phase(self, uid: str, phase: str) -> None:
        self.modify(uid, status={"phase": phase, "ready": phase == "Running"})

    def start_deletion(self, uid: str, at: datetime) -> None:
        self.modify(uid, metadata={"deletionTimestamp": _stamp(at)})

    def delete(self, uid: str, at: datetime | None = None) -> None:
        """The runner goes. ARC's finalizers make it carry a deletionTimestamp (`at`,
        when it was not being deleted yet); without `at` it never showed one (its
        finalizers were stripped by hand before the delete)."""
        obj = self.runners.pop(uid)
        if at is not None and "deletionTimestamp" not in obj["metadata"]:
            obj = arc.merged(obj, {"metadata": {"deletionTimestamp": _stamp(at)}})
        self._next(RUNNERS, obj, "DELETED")

    # -- what Kubernetes shows ---------------------------------------------------

    def snapshot(self) -> Snapshot:
        items = {
            POOLS: [dict(p.ars) for p in self.pools.values()],
            POOL_SETS: [dict(p.ers) for p in self.pools.values()],
            RUNNERS: [dict(o) for o in self.runners.values()],
        }
        # The list's RV is the store's current revision, newer than every item.
        return Snapshot(self.rv_of(self.seq), self.seq, items)

    def events_after(self, index: int) -> list[ModelEvent]:
        return self.log[index:]

    def has_job(self, uid: str) -> bool:
        return uid in self.jobs

    def phase(self, uid: str) -> str | None:
        phase: str | None = self.runners[uid].get("status", {}).get("phase")
        return phase

    def deleting(self, uid: str) -> bool:
        return "deletionTimestamp" in self.runners[uid]["metadata"]
