"""One watch request on an ARC resource, as a stream of typed events.

The official client's `Watch.stream` retries a 410 once and then raises, and does not
advance its resourceVersion on BOOKMARKs; the reconnect loop here is ours
(`sync.watcher`), so this module only opens one request and decodes its lines.
Bookmarks are requested: the API server sends one about every minute, carrying
only a resourceVersion, which keeps the resume point fresh and proves the
connection is alive. An ERROR event with code 410 (the resourceVersion was
compacted), or 504 "Too large resource version" (the server's cache is behind the
resume point), becomes ResourceVersionExpired, which means: relist.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import urllib3

from snapshotter.errors import KubeUnavailable, ResourceVersionExpired
from snapshotter.kube.decode import DecodeError, decode_json
from snapshotter.kube.errors import TOO_LARGE_RV, translated_errors

log = logging.getLogger(__name__)

EventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]
_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK"})
GONE = 410
TIMEOUT = 504


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: EventType
    object: dict[str, Any]

    @property
    def resource_version(self) -> str | None:
        metadata = self.object.get("metadata") or {}
        rv = metadata.get("resourceVersion")
        return rv if isinstance(rv, str) and rv else None


class WatchStream:
    """One open watch request; iterate it for events, `abort()` it from another thread."""

    def __init__(self, response: urllib3.HTTPResponse, what: str) -> None:
        self._response = response
        self.what = what

    def __iter__(self) -> Iterator[WatchEvent]:
        """Events until the server ends the request.

        Raises ResourceVersionExpired for 410, KubeUnavailable for connection errors
        and read timeouts (a silently dead connection), KubeForbidden for 401/403.
        """
        try:
            with translated_errors(self.what):
                for line in _lines(self._response):
                    event = _decode(line, self.what)
                    if event is not None:
                        yield event
        finally:
            self._response.close()
            self._response.release_conn()

    def abort(self) -> None:
        """Unblock a read in progress (thread-safe); iteration then ends with an error."""
        self._response.shutdown()


def _lines(response: urllib3.HTTPResponse) -> Iterator[bytes]:
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=True):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        yield from (line for line in complete if line.strip())
    if buffer.strip():
        yield buffer


def _decode(line: bytes, what: str) -> WatchEvent | None:
    try:
        raw = decode_json(line)
    except DecodeError as e:
        raise KubeUnavailable(f"{what}: undecodable event: {e}") from e
    kind = raw.get("type") if isinstance(raw, dict) else None
    obj = raw.get("object") if isinstance(raw, dict) else None
    if kind == "ERROR":
        status = obj if isinstance(obj, dict) else {}
        message = str(status.get("message", ""))
        if status.get("code") == GONE or (
            status.get("code") == TIMEOUT and TOO_LARGE_RV in message
        ):
            raise ResourceVersionExpired(f"{what}: {message or 'gone'}")
        raise KubeUnavailable(f"{what}: error event {status.get('code')}: {status.get('message')}")
    if kind not in _TYPES or not isinstance(obj, dict):
        log.warning("ignored watch event type=%s what=%s", kind, what)
        return None
    return WatchEvent(type=kind, object=obj)
