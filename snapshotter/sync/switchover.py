"""After a complete list of runners: settle the Go exporter's in-flight run rows.

On an adopted Lens database the exporter's rows for runners in flight would stay
`workload_pending`/`workload_running` for ever once the snapshotter writes instead
(`db.switchover` says how they are settled). Every complete list of runners (the
start-up reconciliation, each poll, a watch's relist) is the moment to do it: it
tells which runners are gone.
"""

import logging
from datetime import datetime

from snapshotter.model.records import RUNNERS
from snapshotter.sync.ports import Store
from snapshotter.sync.queue import ListMarker

log = logging.getLogger(__name__)


def settle_after(store: Store, marker: ListMarker, *, now: datetime) -> dict[str, int]:
    """Settle what `marker`'s list of runners decides; rows written by table.kind."""
    streams = [s for s in marker.streams if s.resource == RUNNERS]
    if not streams:
        return {}
    whole = any(s.namespace is None for s in streams)
    settled = store.settle_switchover(
        listed_before=marker.at,
        namespaces=() if whole else tuple(s.namespace for s in streams if s.namespace),
        seen=frozenset().union(*(s.seen for s in streams)),
        now=now,
    )
    if settled.pending or settled.completed:
        log.info(
            "settled the exporter's in-flight runs pending=%d completed=%d tasks=%d",
            settled.pending,
            settled.completed,
            settled.tasks,
        )
    written = {
        "github_workflow_runs.settled_pending": settled.pending,
        "github_workflow_runs.settled_completed": settled.completed,
        "workload_task_state.inserted": settled.tasks,
    }
    return {key: n for key, n in written.items() if n}
