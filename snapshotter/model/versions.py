"""Ordering observations of one object (SPEC §4.4).

resourceVersions of one resource are comparable integers (KEP-5504, GA in Kubernetes
1.35, and true of every etcd-backed API server): a valid one is a positive decimal
integer without leading zeros, and a larger one is newer. Where an RV is not such an
integer (a storage other than etcd), the order falls back to equality plus arrival:
a different RV that arrived later is newer. `seq` is that arrival order.
"""

from dataclasses import dataclass


def integer_rv(rv: str) -> int | None:
    """The RV as an integer, or None when it is not a valid comparable RV."""
    if rv and rv[0] != "0" and rv.isascii() and rv.isdigit():
        return int(rv)
    return None


@dataclass(frozen=True, slots=True)
class Version:
    """Where an observation stands: its resourceVersion, and when it arrived
    (`seq`, 0 for what was loaded from the database)."""

    rv: str
    seq: int = 0

    def newer_than(self, other: "Version") -> bool:
        mine, theirs = integer_rv(self.rv), integer_rv(other.rv)
        if mine is not None and theirs is not None:
            return mine > theirs
        return self.rv != other.rv and self.seq > other.seq

    def not_after(self, listed: "Version") -> bool:
        """Whether this observation predates a complete list taken at `listed`, so
        that the object's absence from that list means it is gone."""
        mine, theirs = integer_rv(self.rv), integer_rv(listed.rv)
        if mine is not None and theirs is not None:
            return mine <= theirs
        return self.seq < listed.seq

    @property
    def comparable(self) -> bool:
        return integer_rv(self.rv) is not None
