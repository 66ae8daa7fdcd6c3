"""A steady stream of jobs from the simulated ARC, for fault tests and benchmarks.

Jobs start at a fixed rate, each on its own runner living a random time (ARC 0.14:
the runner is deleted the moment its job ends), from a background thread, so that
the caller can break things (stop the database, kill the daemon) meanwhile.
"""

import random
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from snapshotter.clock import monotonic
from tests.support.arc_sim import FinishedRunner, Job, SimulatedArc


class SteadyLoad:
    def __init__(
        self,
        sim: SimulatedArc,
        ers: Mapping[str, Any],
        *,
        rate: float,
        seconds: float,
        lifetimes: tuple[float, float] = (0.05, 2.0),
        seed: int = 1,
    ) -> None:
        self.sim, self.ers = sim, ers
        self.rate, self.count = rate, int(rate * seconds)
        self.lifetimes = lifetimes
        self._rng = random.Random(seed)
        self._futures: list[Future[FinishedRunner]] = []
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def start(self) -> "SteadyLoad":
        self._thread.start()
        return self

    def _run(self) -> None:
        tick = threading.Event()
        workers = int(self.rate * self.lifetimes[1] * 3) + 8
        with ThreadPoolExecutor(max_workers=workers) as pool:
            started = monotonic()
            for i in range(self.count):
                delay = started + i / self.rate - monotonic()
                if delay > 0:
                    tick.wait(delay)
                lifetime = self._rng.uniform(*self.lifetimes)
                job = Job.new(display_name=f"job {i}")
                self._futures.append(
                    pool.submit(self.sim.run_job, self.ers, job, lifetime=lifetime)
                )

    def results(self, timeout: float = 600) -> list[FinishedRunner]:
        """Every job, once all have ended."""
        self._thread.join(timeout)
        return [f.result(timeout) for f in self._futures]
