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
    KubeInvalid,
    KubeNotFound,
    KubeUnavailable,
    KubeUnreachable,
    KubeWarmingUp,
    ResourceVersionExpired,
)

# A watch or list at a resourceVersion the API server's cache has not reached yet
# (e.g. after an etcd restore or a lagging replica) is answered 504 with this text;
# client-go relists from scratch, and so do we.
TOO_LARGE_RV = "Too large resource version"

# A restarted API server, once its authorizer is ready, still refuses custom
# resources for a moment: 503 with `Retry-After: 5` until its CRD handler knows
# every served CRD, then, for a watch, 429 with `Retry-After: 1` until the watch
# cache of the resource is filled (a second or so, longer under load). Both say so
# in the message; other 429s and 503s (priority and fairness shedding load, an
# overloaded or stopping server) are not a server coming back and back off.
WARMING_UP = {
    429: "storage is (re)initializing",
    503: "before all known HTTP paths have been installed",
}


_BY_STATUS: dict[int, type[KubeError]] = {
    401: KubeForbidden,
    403: KubeForbidden,
    404: KubeNotFound,
    409: KubeConflict,
    400: KubeInvalid,  # the request itself was refused (e.g. a name it does not accept)
    422: KubeInvalid,
}


def error_from(e: ApiException, *, invalid_is_conflict: bool = False) -> KubeError:
    """Our error type for an API error status."""
    status = e.status or 0
    detail = f"HTTP {status} {e.reason or ''}".strip()
    if status == 410:  # noqa: PLR2004 - Gone: resourceVersion or continue token compacted
        return ResourceVersionExpired(detail)
    if status == 504 and TOO_LARGE_RV in str(e.body or ""):  # noqa: PLR2004
        return ResourceVersionExpired(f"{detail}: {TOO_LARGE_RV.lower()}")
    if status in WARMING_UP and WARMING_UP[status] in str(e.body or ""):
        return KubeWarmingUp(f"{detail}: {WARMING_UP[status]}")
    if status == 422 and invalid_is_conflict:  # noqa: PLR2004
        # 422 on a JSON patch: one of its `test` operations failed (the object changed)
        return KubeConflict(detail)
    return _BY_STATUS.get(status, KubeUnavailable)(detail)


@contextmanager
def translated_errors(what: str, *, invalid_is_conflict: bool = False) -> Iterator[None]:
    """Turn client and connection exceptions into our KubeError tree."""
    try:
        yield
    except ApiException as e:
        error = error_from(e, invalid_is_conflict=invalid_is_conflict)
        raise type(error)(f"{what}: {error}") from e
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise KubeUnreachable(f"{what}: {e}") from e
