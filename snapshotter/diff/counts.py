"""Runner-set counts derived from the runners themselves (SPEC §3.1), and when to
write them.

ARS status counts go stale in 0.14 (the controller writes them only when the total
changes) and are gone in 0.15, so they come from the EphemeralRunners: each pool's
tally is kept incrementally in the state. `desired_runners` is `spec.replicas` of
the newest EphemeralRunnerSet of the pool. Counts reach the pool row, with one
history row, at most once per period per pool: a busy pool writes one history row
per period with the counts at its end, an idle one none.
"""

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from snapshotter.diff.changes import ChangeSet, RowWrite
from snapshotter.diff.mapping import RunnerSetIndex, with_counts
from snapshotter.diff.rows import RunnerCounts, RunnerSetHistoryRow, RunnerSetRow, Tally
from snapshotter.diff.state import MapDelta, StateDelta, SyncState
from snapshotter.model.records import EphemeralRunnerSetRecord

_EPOCH = datetime.min.replace(tzinfo=UTC)


def _age_key(ers: EphemeralRunnerSetRecord) -> tuple[datetime, str]:
    return (ers.creation_timestamp or _EPOCH, ers.identity.name)


def desired_by_pool(
    ephemeral_runner_sets: Iterable[EphemeralRunnerSetRecord], index: RunnerSetIndex
) -> dict[str, int]:
    """Pool uid -> `spec.replicas` of its newest EphemeralRunnerSet."""
    newest: dict[str, EphemeralRunnerSetRecord] = {}
    for ers in ephemeral_runner_sets:
        set_uid = index.set_of_ephemeral_set(ers)
        if set_uid is None:
            continue
        current = newest.get(set_uid)
        if current is None or _age_key(ers) > _age_key(current):
            newest[set_uid] = ers
    return {uid: ers.replicas for uid, ers in newest.items()}


def state_index(state: SyncState) -> RunnerSetIndex:
    return RunnerSetIndex(state.runner_sets, state.ephemeral_runner_sets, state.active_by_key)


def history_row(row: RunnerSetRow, *, now: datetime) -> RunnerSetHistoryRow:
    return RunnerSetHistoryRow(
        runner_set_uid=row.uid,
        cluster_name=row.cluster_name,
        observed_at=now,
        current_runners=row.current_runners,
        pending_runners=row.pending_runners,
        running_runners=row.running_runners,
        failed_runners=row.failed_runners,
        busy_runners=row.busy_runners,
        desired_runners=row.desired_runners,
    )


def live_counts(state: SyncState) -> dict[str, RunnerCounts]:
    """The counts of every active pool as the state has them now."""
    desired = desired_by_pool(state.ephemeral_runner_sets.values(), state_index(state))
    return {
        uid: state.tallies.get(uid, Tally()).counts(desired.get(uid, 0))
        for uid in state.runner_sets
    }


def counts_due(state: SyncState, *, now: datetime, period: timedelta | None = None) -> ChangeSet:
    """Pool rows whose counts moved, and history rows whose counts differ from the
    pool's last history row, whose period has passed (all of them when `period` is
    None)."""
    writes, history = [], []
    written: dict[str, RunnerCounts] = {}
    histories: dict[str, RunnerCounts] = {}
    for uid, counts in live_counts(state).items():
        row_due = counts != state.written.get(uid)
        history_due = counts != state.histories.get(uid)
        if not (row_due or history_due):
            continue
        last = state.history_at.get(uid)
        if period is not None and last is not None and now - last < period:
            continue
        row = with_counts(replace(state.runner_sets[uid], last_sync_at=now), counts)
        if row_due:
            writes.append(RowWrite(row, new=False))
            written[uid] = counts
        if history_due:
            history.append(history_row(row, now=now))
            histories[uid] = counts
    return ChangeSet(
        now=now,
        runner_sets=tuple(writes),
        history=tuple(history),
        delta=StateDelta(
            runner_sets=MapDelta(put={w.row.uid: w.row for w in writes}),
            written=written,
            histories=histories,
            history_at=dict.fromkeys([*written, *histories], now),
        ),
    )


def by_pool(changes: ChangeSet) -> list[ChangeSet]:
    """A counts ChangeSet as one per pool (to isolate a pool the database refuses)."""
    writes = {w.row.uid: w for w in changes.runner_sets}
    history = {h.runner_set_uid: h for h in changes.history}
    delta = changes.delta
    split = []
    for uid in dict.fromkeys([*writes, *history]):
        write = writes.get(uid)
        split.append(
            ChangeSet(
                now=changes.now,
                runner_sets=(write,) if write else (),
                history=(history[uid],) if uid in history else (),
                delta=StateDelta(
                    runner_sets=MapDelta(put={uid: write.row} if write else {}),
                    written={uid: delta.written[uid]} if uid in delta.written else {},
                    histories={uid: delta.histories[uid]} if uid in delta.histories else {},
                    history_at={uid: delta.history_at[uid]},
                ),
            )
        )
    return split
