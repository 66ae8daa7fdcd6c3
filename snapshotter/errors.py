"""Error types and exit codes.

Third-party exceptions are wrapped (`raise ... from e`) only inside `kube/` and `db/`,
so the rest of the code reasons about these types alone.
"""

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    CRASH = 1
    USAGE = 2
    STARTUP = 3
    ONCE_FAILED = 4


class SnapshotterError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(SnapshotterError):
    """The configuration is invalid; `problems` holds one message per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class StartupError(SnapshotterError):
    """A dependency the daemon needs is unreachable or misconfigured at start."""


class KubeError(SnapshotterError):
    """A Kubernetes API call failed."""


class ResourceVersionExpired(KubeError):
    """410 Gone: the requested resourceVersion was compacted; relist."""


class KubeUnavailable(KubeError):
    """Connection error, timeout, 5xx or 429: retry with backoff."""


class KubeUnreachable(KubeUnavailable):
    """No HTTP answer at all (connection refused or reset): the API server is away
    or restarting."""


class KubeWarmingUp(KubeUnavailable):
    """503 or 429 from an API server that has just started: its CRD handler or the
    resource's watch cache is not ready yet; it answers normally a moment later."""


class KubeInvalid(KubeUnavailable):
    """400/422: the API server refused the request itself (e.g. a name it does not
    accept). Retried like an outage, but worth telling an operator about."""


class KubeForbidden(KubeError):
    """401/403: credentials or RBAC do not allow the call."""


class KubeNotFound(KubeError):
    """404: the resource type (CRD) or the object does not exist."""


class KubeConflict(KubeError):
    """409: the object changed since it was read (optimistic concurrency)."""


class StoreError(SnapshotterError):
    """A database operation failed; the transaction was rolled back."""


class StoreUnavailable(StoreError):
    """The database cannot be reached, timed out or is refusing work: retry later."""


class StoreForbidden(StoreUnavailable):
    """The database refused the login or the rights, or TLS failed (an untrusted
    certificate): retried while running (someone may fix it), but not at start-up,
    where it is a configuration problem."""


class StoreFenced(StoreError):
    """Another replica became leader (a newer epoch): this one must not write."""


class StoreRejected(StoreError):
    """The database refused the data itself (a data or constraint error): retrying the
    same rows fails again, so the bad object must be isolated."""


class ParseError(SnapshotterError):
    """One Kubernetes object cannot be read; it is skipped and counted, never fatal."""

    def __init__(self, kind: str, ref: str, reason: str) -> None:
        super().__init__(f"{kind} {ref}: {reason}")
        self.kind = kind
        self.ref = ref
        self.reason = reason
