"""Translation of the client's exceptions into the SnapshotterError tree.

Nothing outside `kube/` ever sees an ApiException or a urllib3 error.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import urllib3
from kubernetes.client.exceptions import ApiException

from snapshotter.errors import (
    KubeConflict,
    KubeError,
    KubeForbidden,
    KubeNotFound,
    KubeUnavailable,
    ResourceVersionExpired,
)


def error_from(e: ApiException) -> KubeError:
    """Our error type for an API error status."""
    status = e.status or 0
    detail = f"HTTP {status} {e.reason or ''}".strip()
    if status == 410:  # noqa: PLR2004 - Gone: resourceVersion or continue token compacted
        return ResourceVersionExpired(detail)
    if status in (401, 403):
        return KubeForbidden(detail)
    if status == 404:  # noqa: PLR2004
        return KubeNotFound(detail)
    if status == 409:  # noqa: PLR2004
        return KubeConflict(detail)
    return KubeUnavailable(detail)


@contextmanager
def translated_errors(what: str) -> Iterator[None]:
    """Turn client and connection exceptions into our KubeError tree."""
    try:
        yield
    except ApiException as e:
        error = error_from(e)
        raise type(error)(f"{what}: {error}") from e
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise KubeUnavailable(f"{what}: {e}") from e
