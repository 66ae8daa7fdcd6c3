"""Leader election through its own port: a Lease kept in memory with the API
server's optimistic concurrency (an update at a stale resourceVersion is a 409).
The real Lease API is exercised in tests/e2e/test_leader_election.py."""

import threading
from dataclasses import replace

import pytest

from snapshotter.clock import monotonic, utc_now
from snapshotter.errors import KubeConflict, KubeError, KubeForbidden, KubeInvalid, KubeUnavailable
from snapshotter.kube.lease import LeaseRecord
from snapshotter.ops.leader import Elector, Timing
from tests.support.waiting import eventually

FAST = Timing(lease_duration=0.8, renew_deadline=0.5, retry_period=0.05)


class MemoryLease:
    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0
        self.broken = False
        self.refusal: KubeError | None = None  # what every write answers
        self._lock = threading.Lock()

    def get(self) -> LeaseRecord | None:
        if self.broken:
            raise KubeUnavailable("API server away")
        return self.record

    def create(self, record: LeaseRecord) -> LeaseRecord:
        with self._lock:
            if self.refusal is not None:
                raise self.refusal
            if self.record is not None:
                raise KubeConflict("exists")
            return self._store(record)

    def update(self, record: LeaseRecord) -> LeaseRecord:
        with self._lock:
            if self.broken:
                raise KubeUnavailable("API server away")
            if self.refusal is not None:
                raise self.refusal
            if self.record is None or record.resource_version != self.record.resource_version:
                raise KubeConflict("changed meanwhile")
            return self._store(record)

    def _store(self, record: LeaseRecord) -> LeaseRecord:
        self.version += 1
        self.record = replace(record, resource_version=str(self.version))
        return self.record


class Candidate:
    def __init__(self, lease: MemoryLease, name: str, timing: Timing = FAST) -> None:
        self.events: list[str] = []
        self.errors: list[str] = []
        self.cut_off: str | None = None  # why it may not lead (the database away)
        self.elector = Elector(
            lease,
            identity=name,
            clock=utc_now,
            on_started=lambda: self.events.append("started"),
            on_stopped=lambda: self.events.append("stopped"),
            on_error=self.errors.append,
            may_lead=lambda: self.cut_off,
            timing=timing,
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


LOUD = replace(FAST, trouble_seconds=0.5, warn_every_seconds=60)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("refusal", "reason"),
    [
        (KubeForbidden("HTTP 403 Forbidden"), "forbidden"),
        (KubeInvalid("HTTP 422 Unprocessable Entity"), "invalid"),
    ],
)
def test_a_lease_it_may_not_take_is_loud_counted_and_not_ready(
    refusal: KubeError, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    lease = MemoryLease()
    lease.refusal = refusal
    with Candidate(lease, "a", LOUD) as a:
        eventually(lambda: len(a.errors) >= 5, timeout=5)
        problem = eventually(a.elector.lease_problem, timeout=5)
        assert problem is not None
        assert f"({reason}: " in problem
        assert set(a.errors) == {reason}
        assert not a.elector.is_leader
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1  # once a minute at most, not once per attempt
    assert f"reason={reason}" in warnings[0].getMessage()


@pytest.mark.timeout(20)
def test_the_problem_clears_when_the_lease_can_be_used_again() -> None:
    lease = MemoryLease()
    lease.refusal = KubeForbidden("HTTP 403 Forbidden")
    with Candidate(lease, "a", LOUD) as a:
        eventually(a.elector.lease_problem, timeout=5)
        lease.refusal = None
        eventually(lambda: a.elector.is_leader, timeout=5)
        assert a.elector.lease_problem() is None


@pytest.mark.timeout(20)
def test_losing_the_race_for_the_lease_is_no_problem() -> None:
    lease = MemoryLease()
    lease.refusal = KubeConflict("changed meanwhile")  # another replica wins every race
    with Candidate(lease, "b", LOUD) as b:
        threading.Event().wait(1.0)  # longer than trouble_seconds
        assert b.elector.lease_problem() is None
        assert b.errors == []


@pytest.mark.timeout(20)
def test_a_leader_cut_off_from_the_database_hands_the_lease_to_a_standby() -> None:
    lease = MemoryLease()
    with Candidate(lease, "a") as a:
        eventually(lambda: a.elector.is_leader, timeout=5)
        with Candidate(lease, "b") as b:
            a.cut_off = "the database is out of reach for 30s"
            cut = monotonic()
            eventually(lambda: b.elector.is_leader, timeout=5)
            assert monotonic() - cut < FAST.lease_duration  # released, not expired
            threading.Event().wait(0.5)
            assert not a.elector.is_leader  # it does not take the Lease back meanwhile
            b.elector.stop()
            b.elector.join(timeout=5)
            threading.Event().wait(0.5)
            assert not a.elector.is_leader  # not while it cannot reach the database
            a.cut_off = None
            eventually(lambda: a.elector.is_leader, timeout=5)
    assert a.events == ["started", "stopped", "started", "stopped"]
