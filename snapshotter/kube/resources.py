"""The ARC custom resources the snapshotter reads (group actions.github.com/v1alpha1)."""

from dataclasses import dataclass

from snapshotter.model import records

GROUP = "actions.github.com"
VERSION = "v1alpha1"


@dataclass(frozen=True, slots=True)
class Resource:
    plural: str
    kind: str

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


# The kind is AutoscalingRunnerSet with a lower-case "s" (not AutoScalingRunnerSet).
AUTOSCALING_RUNNER_SETS = Resource(records.RUNNER_SETS, "AutoscalingRunnerSet")
EPHEMERAL_RUNNER_SETS = Resource(records.EPHEMERAL_RUNNER_SETS, "EphemeralRunnerSet")
EPHEMERAL_RUNNERS = Resource(records.RUNNERS, "EphemeralRunner")

ALL = (AUTOSCALING_RUNNER_SETS, EPHEMERAL_RUNNER_SETS, EPHEMERAL_RUNNERS)
