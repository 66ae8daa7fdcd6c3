"""One poll cycle: list every resource in every scope, then hand the lists to the writer.

The writer's position is read before listing so that anything the watchers apply
while the lists are in flight is recognised as newer than the lists.
"""

import logging
from collections.abc import Sequence
from typing import Protocol

from snapshotter.kube import resources
from snapshotter.kube.client import Listing
from snapshotter.sync.applier import ApplyResult
from snapshotter.sync.ports import Source

log = logging.getLogger(__name__)


class Writer(Protocol):
    @property
    def position(self) -> int: ...

    def apply_listings(self, listings: Sequence[Listing], *, since: int) -> ApplyResult: ...


def list_everything(source: Source, namespaces: Sequence[str]) -> list[Listing]:
    scopes: Sequence[str | None] = namespaces or [None]
    return [source.list_all(resource, scope) for resource in resources.ALL for scope in scopes]


def poll_once(source: Source, writer: Writer, *, namespaces: Sequence[str] = ()) -> ApplyResult:
    since = writer.position
    listings = list_everything(source, namespaces)
    result = writer.apply_listings(listings, since=since)
    log.info(
        "cycle done listed=%s skipped=%d %s rows_written=%d took_ms=%d",
        sum(result.listed.values()),
        result.skipped,
        " ".join(f"{k}={v}" for k, v in result.changes.summary().items() if v),
        result.rows_written,
        result.seconds * 1000,
    )
    return result
