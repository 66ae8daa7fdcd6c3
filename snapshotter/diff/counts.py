"""Runner-set counts derived from the runners themselves (SPEC §3.1).

ARS status counts go stale in 0.14 (the controller writes them only when the total
changes) and are gone in 0.15, so they are recounted from the EphemeralRunners.
`desired_runners` is `spec.replicas` of the newest EphemeralRunnerSet of the pool.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from snapshotter.diff.mapping import RunnerSetIndex
from snapshotter.diff.rows import RunnerCounts, RunnerStateRow
from snapshotter.model.records import EphemeralRunnerSetRecord

_EPOCH = datetime.min.replace(tzinfo=UTC)


def _tally(runners: Iterable[RunnerStateRow]) -> dict[str, list[int]]:
    # [current, pending, running, failed, busy]; ARC counts a runner with no phase yet
    # as pending, like the EphemeralRunnerSet controller does.
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for runner in runners:
        if runner.runner_set_uid is None or not runner.is_live:
            continue
        counts = tally[runner.runner_set_uid]
        counts[0] += 1
        counts[1] += runner.phase in (None, "Pending")
        counts[2] += runner.phase == "Running"
        counts[3] += runner.phase == "Failed"
        counts[4] += runner.has_job
    return tally


def _desired(
    ephemeral_runner_sets: Iterable[EphemeralRunnerSetRecord], index: RunnerSetIndex
) -> dict[str, int]:
    newest: dict[str, EphemeralRunnerSetRecord] = {}
    for ers in ephemeral_runner_sets:
        set_uid = index.set_of_ephemeral_set(ers)
        if set_uid is None:
            continue
        current = newest.get(set_uid)
        if current is None or _age_key(ers) > _age_key(current):
            newest[set_uid] = ers
    return {uid: ers.replicas for uid, ers in newest.items()}


def _age_key(ers: EphemeralRunnerSetRecord) -> tuple[datetime, str]:
    return (ers.creation_timestamp or _EPOCH, ers.identity.name)


def runner_counts(
    runners: Iterable[RunnerStateRow],
    ephemeral_runner_sets: Mapping[str, EphemeralRunnerSetRecord],
    index: RunnerSetIndex,
) -> dict[str, RunnerCounts]:
    """Counts per runner-set uid, for every runner set that has runners or a desired count."""
    tally = _tally(runners)
    desired = _desired(ephemeral_runner_sets.values(), index)
    counts = {}
    for uid in tally.keys() | desired.keys():
        current, pending, running, failed, busy = tally.get(uid, [0, 0, 0, 0, 0])
        counts[uid] = RunnerCounts(current, pending, running, failed, busy, desired.get(uid, 0))
    return counts
