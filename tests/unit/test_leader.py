"""Leader election through its own port: a Lease kept in memory with the API
server's optimistic concurrency (an update at a stale resourceVersion is a 409).
The real Lease API is exercised in tests/e2e/test_leader_election.py."""

import threading
from dataclasses import replace

import pytest

from snapshotter.clock import monotonic, utc_now
from snapshotter.errors import KubeConflict, KubeUnavailable
from snapshotter.kube.lease import LeaseRecord
from snapshotter.ops.leader import Elector, Timing
from tests.support.waiting import eventually

FAST = Timing(lease_duration=0.8, renew_deadline=0.5, retry_period=0.05)


class MemoryLease:
    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0
        self.broken = False
        self._lock = threading.Lock()

    def get(self) -> LeaseRecord | None:
        if self.broken:
            raise KubeUnavailable("API server away")
        return self.record

    def create(self, record: LeaseRecord) -> LeaseRecord:
        with self._lock:
            if self.record is not None:
                raise KubeConflict("exists")
            return self._store(record)

    def update(self, record: LeaseRecord) -> LeaseRecord:
        with self._lock:
            if self.broken:
                raise KubeUnavailable("API server away")
            if self.record is None or record.resource_version != self.record.resource_version:
                raise KubeConflict("changed meanwhile")
            return self._store(record)

    def _store(self, record: LeaseRecord) -> LeaseRecord:
        self.version += 1
        self.record = replace(record, resource_version=str(self.version))
        return self.record


class Candidate:
    def __init__(self, lease: MemoryLease, name: str) -> None:
        self.events: list[str] = []
        self.elector = Elector(
            lease,
            identity=name,
            clock=utc_now,
            on_started=lambda: self.events.append("started"),
            on_stopped=lambda: self.events.append("stopped"),
            timing=FAST,
        )

    def __enter__(self) -> "Candidate":
        self.elector.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.elector.stop()
        self.elector.join(timeout=5)


@pytest.mark.timeout(20)
def test_a_lone_candidate_leads_renews_and_releases_on_stop() -> None:
    lease = MemoryLease()
    with Candidate(lease, "a") as a:
        eventually(lambda: a.elector.is_leader, timeout=5)
        renewed = lease.version
        eventually(lambda: lease.version > renewed + 3, timeout=5)  # renewing
    assert a.events == ["started", "stopped"]
    assert lease.record is not None
    assert (lease.record.holder, lease.record.lease_duration_seconds) == ("", 1)


@pytest.mark.timeout(20)
def test_only_one_leads_and_a_release_hands_over_at_once() -> None:
    lease = MemoryLease()
    with Candidate(lease, "a") as a:
        eventually(lambda: a.elector.is_leader, timeout=5)
        with Candidate(lease, "b") as b:
            threading.Event().wait(1.5)  # longer than the lease: a keeps renewing it
            assert not b.elector.is_leader
            a.elector.stop()
            released = monotonic()
            eventually(lambda: b.elector.is_leader, timeout=5)
            assert monotonic() - released < FAST.lease_duration  # no waiting for expiry
            assert lease.record is not None
            assert (lease.record.holder, lease.record.transitions) == ("b", 1)


@pytest.mark.timeout(20)
def test_a_leader_that_cannot_renew_stops_leading_and_another_takes_over() -> None:
    lease = MemoryLease()
    with Candidate(lease, "a") as a:
        eventually(lambda: a.elector.is_leader, timeout=5)
        lease.broken = True  # a cannot reach the API server
        eventually(lambda: not a.elector.is_leader, timeout=5)
        assert a.events == ["started", "stopped"]
        lease.broken = False
        with Candidate(lease, "b") as b:
            # a renews again first (its lease looks unexpired to b); either may lead,
            # but never both
            eventually(lambda: a.elector.is_leader or b.elector.is_leader, timeout=5)
            assert not (a.elector.is_leader and b.elector.is_leader)


@pytest.mark.timeout(20)
def test_an_expired_lease_of_another_holder_is_taken() -> None:
    lease = MemoryLease()
    lease.create(LeaseRecord("ghost", 1, utc_now(), utc_now(), 4))  # nobody renews it
    with Candidate(lease, "a") as a:
        started = monotonic()
        eventually(lambda: a.elector.is_leader, timeout=5)
        assert monotonic() - started >= 0.9  # it waited for the lease to run out
        assert lease.record is not None
        assert lease.record.transitions == 5
