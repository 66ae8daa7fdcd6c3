"""Which runners are launchers and which are workers (Lens's `runner_type`).

Lens calls a runner a worker when its name contains `-runner-`
(Lens/modules/exporters/github-runners-exporter/pkg/types/types.go:128-135), a
convention of SaFE's multi-node jobs: on stock ARC every runner is named
`<set>-runner-<suffix>`, so that rule would make every runner a worker. Here every
runner is a launcher unless `lens.worker_name_pattern` (a regular expression,
searched in the runner's name) says it is a worker. Workers get runner states but no
run rows, as in Lens (runner_state_processor.go:186-194 skips them).
"""

import re
from dataclasses import dataclass
from typing import Literal

RunnerType = Literal["launcher", "worker"]
LAUNCHER: RunnerType = "launcher"
WORKER: RunnerType = "worker"


@dataclass(frozen=True, slots=True)
class RunnerKinds:
    """The worker pattern, compiled once; none: every runner is a launcher."""

    worker_pattern: re.Pattern[str] | None = None

    @classmethod
    def from_pattern(cls, pattern: str | None) -> "RunnerKinds":
        return cls(re.compile(pattern) if pattern else None)

    def of(self, name: str) -> RunnerType:
        if self.worker_pattern is not None and self.worker_pattern.search(name):
            return WORKER
        return LAUNCHER


ALL_LAUNCHERS = RunnerKinds()
