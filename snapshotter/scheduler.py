"""The poll schedule: one APScheduler 3.x interval job, the only APScheduler user.

`max_instances=1` and `coalesce` make an overrunning cycle skip ticks instead of
stacking them; the misfire grace is one interval, so a brief database stall is not
reported as a missed run. The first run happens at start, or one interval
after it when the daemon has just reconciled.
"""

import logging
from collections.abc import Callable
from datetime import UTC
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.schedulers.background import BackgroundScheduler

from snapshotter.clock import utc_now

log = logging.getLogger(__name__)

JOB_ID = "snapshot"


class PollSchedule:
    def __init__(
        self, job: Callable[[], object], *, interval_seconds: float, run_now: bool = True
    ) -> None:
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": max(1, int(interval_seconds)),
            },
        )
        self._scheduler.add_listener(
            self._on_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
        )
        # Without next_run_time an interval job first runs one interval after start;
        # next_run_time=None would add it paused.
        first_run = {"next_run_time": utc_now()} if run_now else {}
        self._scheduler.add_job(
            job,
            "interval",
            seconds=interval_seconds,
            id=JOB_ID,
            replace_existing=True,
            **first_run,
        )
        logging.getLogger("apscheduler").setLevel(logging.WARNING)

    def start(self) -> None:
        self._scheduler.start()

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def run_soon(self) -> None:
        """Run the job now (or as soon as the running one ends) instead of at its tick."""
        if self._scheduler.running:
            self._scheduler.modify_job(JOB_ID, next_run_time=utc_now())

    def shutdown(self) -> None:
        """Stop scheduling and wait for a running cycle to finish."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    @staticmethod
    def _on_event(event: Any) -> None:
        if event.code == EVENT_JOB_ERROR:
            log.error("poll job crashed error=%r", event.exception)
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            log.warning("previous poll cycle still running, skipping this tick")
        else:
            log.warning("poll cycle missed its time")
