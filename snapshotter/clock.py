"""The only reader of wall time.

Pure code takes `now` as a parameter; I/O code takes a `Clock` so that tests can
pass a fixed one instead of patching modules.
"""

import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Current time as an aware UTC datetime."""
    return datetime.now(UTC)


def monotonic() -> float:
    """Seconds from an arbitrary origin, for durations and latencies."""
    return time.monotonic()
