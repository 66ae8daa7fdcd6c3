"""Raw objects -> Observed, with malformed objects skipped and reported once.

Parsing happens on the thread that received the object (a watcher, the poller),
never on the writer. A malformed object is skipped and reported once per
(uid, resourceVersion); if it was persisted before, its uid still counts as
listed, so a bad update never turns into a deletion.
"""

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from snapshotter.diff.observed import Observed, sighting
from snapshotter.errors import ParseError
from snapshotter.model import parse
from snapshotter.model.records import EPHEMERAL_RUNNER_SETS, RUNNER_SETS, RUNNERS, Identity
from snapshotter.model.versions import Version
from snapshotter.ops.stats import SyncStats

log = logging.getLogger(__name__)

PARSERS: dict[str, Callable[[parse.RawObject], parse.Parsed[Any]]] = {
    RUNNER_SETS: parse.parse_runner_set,
    EPHEMERAL_RUNNER_SETS: parse.parse_ephemeral_runner_set,
    RUNNERS: parse.parse_ephemeral_runner,
}
KINDS = {
    RUNNER_SETS: "AutoscalingRunnerSet",
    EPHEMERAL_RUNNER_SETS: "EphemeralRunnerSet",
    RUNNERS: "EphemeralRunner",
}


@dataclass(slots=True)
class ParseReport:
    """Skipped objects and warnings, each logged once per (uid, resourceVersion).
    Shared by the poller and the watchers, so it takes a lock."""

    limit: int = 10_000
    stats: SyncStats | None = None
    skipped: int = 0
    warnings: int = 0
    _reported: OrderedDict[tuple[str, str], None] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def first_time(self, uid: str, resource_version: str) -> bool:
        key = (uid, resource_version)
        with self._lock:
            if key in self._reported:
                return False
            self._reported[key] = None
            if len(self._reported) > self.limit:
                self._reported.popitem(last=False)
            return True

    def skip(self, error: ParseError, ident: Identity | None) -> None:
        with self._lock:
            self.skipped += 1
        if self.stats is not None:
            self.stats.malformed()
        if ident is None or self.first_time(ident.uid, ident.resource_version):
            log.warning(
                "skipped malformed object kind=%s ref=%s reason=%s",
                error.kind,
                error.ref,
                error.reason,
            )

    def warn(self, kind: str, ident: Identity, warnings: Iterable[str]) -> None:
        warnings = tuple(warnings)
        if not warnings:
            return
        with self._lock:
            self.warnings += len(warnings)
        if self.first_time(ident.uid, ident.resource_version):
            if self.stats is not None:
                self.stats.ignored_fields(kind, len(warnings))
            for warning in warnings:
                log.warning(
                    "ignored field kind=%s ref=%s/%s problem=%s",
                    kind,
                    ident.namespace,
                    ident.name,
                    warning,
                )


def observe(
    resource: str,
    raw: parse.RawObject,
    *,
    at: datetime,
    seq: int,
    report: ParseReport,
    deleted: bool = False,
) -> Observed[Any] | None:
    """One observation of `raw` (a list item or a watch event), or None (reported)
    when it cannot be read."""
    ident = parse.identity_of(raw)
    try:
        parsed = PARSERS[resource](raw)
    except ParseError as e:
        report.skip(e, ident)
        return None
    record = parsed.record
    report.warn(KINDS[resource], record.identity, parsed.warnings)
    return sighting(
        resource,
        record.identity.uid,
        record,
        version=Version(record.identity.resource_version, seq),
        at=at,
        deleted=deleted,
    )
