"""One pool's next row: its persisted row folded with what was observed (SPEC §3.1).

The newest observation sets what the AutoscalingRunnerSet says; deletion (a
deletionTimestamp, a DELETED event, absence from a complete list) is final. Counts
are the state's business (see `counts`): a new pool starts with its live counts,
an existing one keeps the counts its row has until they are next written.
"""

from dataclasses import replace
from datetime import datetime

from snapshotter.diff.mapping import runner_set_row
from snapshotter.diff.observed import Observed, Vanished
from snapshotter.diff.rows import RunnerCounts, RunnerSetRow
from snapshotter.model.records import RunnerSetRecord
from snapshotter.model.versions import Version


def next_row(
    previous: RunnerSetRow | None,
    observed: Observed[RunnerSetRecord] | None,
    vanished: Vanished | None,
    *,
    previous_seq: int,
    counts: RunnerCounts,
    cluster_name: str,
    now: datetime,
) -> RunnerSetRow:
    newer = observed is not None and (
        previous is None
        or observed.version.newer_than(Version(previous.resource_version, previous_seq))
    )
    if observed is not None and newer:
        row = runner_set_row(
            observed.record,
            counts=previous.counts if previous else counts,
            cluster_name=cluster_name,
            now=now,
        )
        if previous is not None:
            row = replace(
                row,
                last_sync_at=previous.last_sync_at,
                status="deleted" if previous.status == "deleted" else row.status,
                deleted_at=previous.deleted_at or row.deleted_at,
            )
    elif previous is not None:  # an absent or older observation of a known pool
        row = previous
    else:
        raise ValueError("a pool absent from a list must be a persisted one")
    if row.status == "deleted":
        return row
    if vanished is not None:
        seq = observed.version.seq if newer and observed is not None else previous_seq
        if not Version(row.resource_version, seq).not_after(vanished.listed):
            vanished = None  # observed after the list began: its absence says nothing
    if observed is not None and observed.deleted_at is not None:
        return replace(row, status="deleted", deleted_at=row.deleted_at or observed.deleted_at)
    if vanished is not None:
        # the list's RV is the deletion's: any observation at or before it is older
        return replace(
            row,
            status="deleted",
            deleted_at=row.deleted_at or vanished.at,
            resource_version=vanished.listed.rv,
        )
    return row
