"""An in-memory `Source` (the sync engine's port) serving raw objects from dicts.

It stands in for the Kubernetes list calls in database tests; it is a fake of our
own interface, not of the API server's HTTP protocol.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from snapshotter.kube import resources
from snapshotter.kube.client import Listing
from snapshotter.kube.resources import Resource

_KINDS = {r.kind: r for r in resources.ALL}


class MemorySource:
    def __init__(self, objects: Iterable[Mapping[str, Any]] = ()) -> None:
        self.objects: dict[str, Mapping[str, Any]] = {}
        self.list_version = 1000
        self.put(*objects)

    def put(self, *objects: Mapping[str, Any]) -> None:
        for obj in objects:
            self.objects[obj["metadata"]["uid"]] = obj

    def remove(self, *objects: Mapping[str, Any]) -> None:
        for obj in objects:
            self.objects.pop(obj["metadata"]["uid"], None)

    def list_all(self, resource: Resource, namespace: str | None = None) -> Listing:
        self.list_version += 1
        items = [
            o
            for o in self.objects.values()
            if _KINDS[o["kind"]] == resource
            and (namespace is None or o["metadata"]["namespace"] == namespace)
        ]
        return Listing(resource, namespace, items, str(self.list_version))
