"""An in-memory `Source` (the sync engine's port) serving raw objects from dicts.

It stands in for the Kubernetes list calls in database tests; it is a fake of our
own interface, not of the API server's HTTP protocol. Pages are real JSON, decoded
by the same decoder as the API server's responses.
"""

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import msgspec

from snapshotter.kube import resources
from snapshotter.kube.client import Listing, Page
from snapshotter.kube.decode import decode_page
from snapshotter.kube.resources import Resource

_KINDS = {r.kind: r for r in resources.ALL}


class MemorySource:
    def __init__(self, objects: Iterable[Mapping[str, Any]] = (), *, page_size: int = 2) -> None:
        self.objects: dict[str, Mapping[str, Any]] = {}
        self.list_version = 1000
        self.page_size = page_size
        self.put(*objects)

    def put(self, *objects: Mapping[str, Any]) -> None:
        for obj in objects:
            self.objects[obj["metadata"]["uid"]] = obj

    def remove(self, *objects: Mapping[str, Any]) -> None:
        for obj in objects:
            self.objects.pop(obj["metadata"]["uid"], None)

    def _items(self, resource: Resource, namespace: str | None) -> list[Mapping[str, Any]]:
        return [
            o
            for o in self.objects.values()
            if _KINDS[o["kind"]] == resource
            and (namespace is None or o["metadata"]["namespace"] == namespace)
        ]

    def list_pages(self, resource: Resource, namespace: str | None = None) -> Iterator[Page]:
        self.list_version += 1
        items = self._items(resource, namespace)
        chunks = [items[i : i + self.page_size] for i in range(0, len(items), self.page_size)]
        for n, chunk in enumerate(chunks or [[]]):
            last = n == len(chunks) - 1 or not chunks
            meta = {"resourceVersion": str(self.list_version)}
            if not last:
                meta["continue"] = f"page-{n + 1}"
            yield decode_page(msgspec.json.encode({"items": chunk, "metadata": meta}))

    def list_all(self, resource: Resource, namespace: str | None = None) -> Listing:
        self.list_version += 1
        items: list[Mapping[str, Any]] = [dict(o) for o in self._items(resource, namespace)]
        return Listing(resource, namespace, items, str(self.list_version))
