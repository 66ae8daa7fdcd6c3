"""What a runner's pod asks for: requests and limits summed over its containers.

A job runs in the pod of `EphemeralRunner.spec.spec`; what it costs is what that
pod's containers reserve while the job runs. So the amounts are summed over the
`containers` and over the init containers with `restartPolicy: Always` (native
sidecars, e.g. a dind sidecar), which run beside them. Ordinary init containers
finish before the runner starts, and so before the job: they are left out (the
scheduler's rule, max(sum, largest init container), sizes the pod, not the job).

A limit without a request is also the request (Kubernetes defaults it so). cpu
is in millicores, every other resource in its base unit (memory in bytes),
under its Kubernetes name (`amd.com/gpu`). A malformed entry (a bad quantity, a
bad name, a wrong type) is left out with a warning; the rest still counts.
"""

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from snapshotter.model import quantity

# A resource name is a qualified name (apimachinery's validation), e.g. "amd.com/gpu".
_RESOURCE_NAME = re.compile(
    r"(?:[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)


@dataclass(frozen=True, slots=True)
class PodResources:
    """Requests and limits of a pod template, by resource name (None: none given)."""

    requests: Mapping[str, int] | None
    limits: Mapping[str, int] | None


def _amounts(amounts: object, where: str, warnings: list[str]) -> dict[str, int]:
    """One container's requests or limits, in whole units; bad entries left out."""
    if amounts is None:
        return {}
    if not isinstance(amounts, Mapping):
        warnings.append(f"{where}: expected an object, got {type(amounts).__name__}")
        return {}
    found = {}
    for name, value in amounts.items():
        if not isinstance(name, str) or not _RESOURCE_NAME.fullmatch(name):
            warnings.append(f"{where}: {name!r} is not a resource name")
            continue
        try:
            found[name] = quantity.whole_units(name, value)
        except quantity.InvalidQuantity as e:
            warnings.append(f"{where}.{name}: {e}")
    return found


def _add(total: dict[str, int], amounts: Mapping[str, int]) -> None:
    for name, units in amounts.items():
        total[name] = total.get(name, 0) + units


def _running_containers(pod: Mapping[str, Any], warnings: list[str]) -> Iterator[tuple[str, Any]]:
    """(where, container) for every container that runs beside the job."""
    for key, sidecars_only in (("containers", False), ("initContainers", True)):
        containers = pod.get(key)
        if containers is None:
            continue
        if not isinstance(containers, list):
            warnings.append(f"spec.spec.{key}: expected a list, got {type(containers).__name__}")
            continue
        for i, container in enumerate(containers):
            if not isinstance(container, Mapping):
                continue
            if sidecars_only and container.get("restartPolicy") != "Always":
                continue
            yield f"spec.spec.{key}[{i}].resources", container


def pod_resources(pod: Mapping[str, Any], warnings: list[str]) -> PodResources:
    """The summed requests and limits of a pod spec; problems go to `warnings`.
    A limit without a request counts as the request too, as Kubernetes defaults it
    (GPUs are often given as limits only)."""
    requests: dict[str, int] = {}
    limits: dict[str, int] = {}
    for where, container in _running_containers(pod, warnings):
        resources = container.get("resources")
        if resources is None:
            continue
        if not isinstance(resources, Mapping):
            warnings.append(f"{where}: expected an object, got {type(resources).__name__}")
            continue
        own_limits = _amounts(resources.get("limits"), f"{where}.limits", warnings)
        own_requests = _amounts(resources.get("requests"), f"{where}.requests", warnings)
        _add(requests, {**own_limits, **own_requests})
        _add(limits, own_limits)
    return PodResources(requests=requests or None, limits=limits or None)
