"""Pool counts from the runners (SPEC §3.1): desired from the newest
EphemeralRunnerSet, and the pool and history rows written when counts are due."""

from typing import Any

from snapshotter.diff import counts
from snapshotter.diff.rows import RunnerCounts
from snapshotter.model import parse
from snapshotter.model.records import EphemeralRunnerSetRecord
from tests.support import arc_objects as arc
from tests.support.observing import runner_events
from tests.support.scenario import T1, T2, diff, loaded


def ers(owner: dict[str, Any], name: str, uid: str, replicas: int, **kw: Any) -> Any:
    raw = arc.ephemeral_runner_set(owner, name=name, uid=uid, rv="50", replicas=replicas, **kw)
    return parse.parse_ephemeral_runner_set(raw).record


def test_desired_is_the_replicas_of_the_pools_newest_ephemeral_runner_set(
    cluster: dict[str, Any],
) -> None:
    """By creation time, not by name: ARC names them with a random suffix."""
    state = loaded(cluster)
    index = counts.state_index(state)
    older = ers(cluster["ars"], "arc-linux-x64-zzzzz", "ers-old", 1, created="2026-11-28T09:00:00Z")
    newer = ers(cluster["ars"], "arc-linux-x64-aaaaa", "ers-new", 3, created="2026-11-28T09:30:00Z")
    assert counts.desired_by_pool([newer, older], index) == {"ars-1": 3}
    assert counts.desired_by_pool([older, newer], index) == {"ars-1": 3}


def test_an_ephemeral_runner_set_of_no_known_pool_adds_no_desired_count(
    cluster: dict[str, Any],
) -> None:
    state = loaded(cluster)
    stranger = arc.runner_set(name="arc-gpu", uid="ars-gpu", rv="5")
    orphan: EphemeralRunnerSetRecord = ers(stranger, "arc-gpu-1", "ers-gpu", 4)
    mine = ers(cluster["ars"], "arc-linux-x64-7x9kq", "ers-1", 2)
    assert counts.desired_by_pool([orphan, mine], counts.state_index(state)) == {"ars-1": 2}


def test_counts_due_writes_the_pool_row_and_a_history_row_at_now(cluster: dict[str, Any]) -> None:
    state = loaded(cluster)
    got_job = arc.with_job(arc.bumped(cluster["idle"], "20"), jobId="job-2")
    _, after = diff(state, runner_events(T1, changed=[got_job]), T1)
    due = counts.counts_due(after, now=T2)
    live = RunnerCounts(current=2, running=2, busy=2, desired=2)
    [write] = due.runner_sets
    assert (write.new, write.row.last_sync_at, write.row.counts) == (False, T2, live)
    [history] = due.history
    assert (history.runner_set_uid, history.cluster_name, history.observed_at) == (
        "ars-1",
        "prod",
        T2,
    )
    assert (history.busy_runners, history.current_runners, history.desired_runners) == (2, 2, 2)
    assert due.now == T2
    assert due.delta.runner_sets.put == {"ars-1": write.row}
    assert (due.delta.written, due.delta.histories) == ({"ars-1": live}, {"ars-1": live})
    assert due.delta.history_at == {"ars-1": T2}
