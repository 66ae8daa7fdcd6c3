"""Raw listed objects -> the `Observed` batches the diff takes.

Objects whose resourceVersion equals the persisted one are not parsed again (they
only prove presence). A malformed object is skipped and reported once per
(uid, resourceVersion); if it was persisted before, it still counts as present, so a
bad update never turns into a deletion.
"""

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from snapshotter.diff.state import Observed
from snapshotter.errors import ParseError
from snapshotter.model import parse
from snapshotter.model.records import Identity

log = logging.getLogger(__name__)

R = TypeVar("R")
Parser = Callable[[parse.RawObject], parse.Parsed[R]]


@dataclass(slots=True)
class ParseReport:
    """Skipped objects and warnings, each logged once per (uid, resourceVersion)."""

    limit: int = 10_000
    skipped: int = 0
    warnings: int = 0
    _reported: OrderedDict[tuple[str, str], None] = field(default_factory=OrderedDict)

    def first_time(self, uid: str, resource_version: str) -> bool:
        key = (uid, resource_version)
        if key in self._reported:
            return False
        self._reported[key] = None
        if len(self._reported) > self.limit:
            self._reported.popitem(last=False)
        return True

    def skip(self, error: ParseError, ident: Identity | None) -> None:
        self.skipped += 1
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
        self.warnings += len(warnings)
        if self.first_time(ident.uid, ident.resource_version):
            for warning in warnings:
                log.warning(
                    "ignored field kind=%s ref=%s/%s problem=%s",
                    kind,
                    ident.namespace,
                    ident.name,
                    warning,
                )


def parse_one(
    raw: parse.RawObject, parser: Parser[R], *, kind: str, report: ParseReport
) -> R | None:
    """The record for `raw`, or None (reported) when it cannot be read."""
    ident = parse.identity_of(raw)
    try:
        parsed = parser(raw)
    except ParseError as e:
        report.skip(e, ident)
        return None
    if ident is not None:
        report.warn(kind, ident, parsed.warnings)
    return parsed.record


def observe_listing(
    items: Iterable[parse.RawObject],
    parser: Parser[R],
    *,
    kind: str,
    persisted_versions: Mapping[str, str],
    keep: frozenset[str] = frozenset(),
    report: ParseReport,
) -> Observed[R]:
    """A complete list as an Observed batch.

    `keep` holds uids that newer observations already settled: the list's copy of
    them (or their absence from it) is older news and is ignored.
    """
    changed: dict[str, R] = {}
    unchanged: set[str] = set(keep)
    for raw in items:
        ident = parse.identity_of(raw)
        if ident is not None and (
            ident.uid in keep or persisted_versions.get(ident.uid) == ident.resource_version
        ):
            unchanged.add(ident.uid)
            continue
        record = parse_one(raw, parser, kind=kind, report=report)
        if record is not None and ident is not None:
            changed[ident.uid] = record
        elif ident is not None and ident.uid in persisted_versions:
            unchanged.add(ident.uid)
    return Observed(changed=changed, unchanged=frozenset(unchanged), complete=True)
