"""Decoding list pages cheaply: only what the snapshotter needs, object by object.

An ARC EphemeralRunner is about 6 KB as served (its pod template, managedFields)
and the snapshotter maps a few hundred bytes of it. A page is decoded into raw item
slices; each item's identity (uid, namespace, name, resourceVersion) is read from
its slice without building the rest, and the whole object is decoded only when its
resourceVersion differs from the stored one. Python's cyclic garbage collector is
paused while a page's objects are built: they hold no cycles, and it otherwise
spends most of the decode time walking them.
"""

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import msgspec

from snapshotter.model.records import Identity

RawObject = dict[str, Any]


class _Meta(msgspec.Struct):
    uid: Any = None
    namespace: Any = None
    name: Any = None
    resourceVersion: Any = None  # noqa: N815 - the JSON field name
    deletionTimestamp: Any = None  # noqa: N815


class _Item(msgspec.Struct):
    metadata: _Meta | None = None


class _ListMeta(msgspec.Struct):
    resourceVersion: Any = None  # noqa: N815
    continue_: Any = msgspec.field(default=None, name="continue")


class _Page(msgspec.Struct):
    items: list[msgspec.Raw] | None = None
    metadata: _ListMeta | None = None


_PAGE = msgspec.json.Decoder(_Page)
_ITEM = msgspec.json.Decoder(_Item)
_ANY = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class ListedObject:
    """One list item: its identity, read cheaply, and its body on demand."""

    identity: Identity | None
    raw: msgspec.Raw | bytes
    # Being deleted: an unchanged object still matters then (a finalizer to release)
    terminating: bool = False

    def body(self) -> Any:
        with paused_gc():
            return _ANY.decode(self.raw)


@contextmanager
def paused_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _listed(raw: msgspec.Raw) -> ListedObject:
    try:
        meta = _ITEM.decode(raw).metadata
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ListedObject(None, raw)
    if meta is None:
        return ListedObject(None, raw)
    values = (meta.uid, meta.namespace, meta.name, meta.resourceVersion)
    if not all(isinstance(v, str) and v for v in values):
        return ListedObject(None, raw)
    identity = Identity(meta.uid, meta.namespace, meta.name, meta.resourceVersion)
    return ListedObject(identity, raw, terminating=meta.deletionTimestamp is not None)


@dataclass(frozen=True, slots=True)
class DecodedPage:
    items: list[ListedObject]
    resource_version: str
    continue_token: str | None


def decode_page(data: bytes) -> DecodedPage:
    """A list response body as items with identities; raises ValueError if it is not
    a list at all."""
    try:
        page = _PAGE.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise ValueError(f"undecodable list page: {e}") from e
    meta = page.metadata or _ListMeta()
    items = [_listed(raw) for raw in page.items or ()]
    token = meta.continue_ if isinstance(meta.continue_, str) and meta.continue_ else None
    rv = meta.resourceVersion if isinstance(meta.resourceVersion, str) else ""
    return DecodedPage(items, rv, token)


def decode_json(data: bytes) -> Any:
    """A generic JSON document (a watch event line)."""
    return _ANY.decode(data)


DecodeError = msgspec.DecodeError
