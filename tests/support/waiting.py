"""Wait for something another thread or process will make true (with a safety timeout)."""

import threading
from collections.abc import Callable
from typing import TypeVar

from snapshotter.clock import monotonic

T = TypeVar("T")


def eventually(check: Callable[[], T], *, timeout: float = 30.0, every: float = 0.2) -> T:
    """Call `check` until it returns a truthy value, and return that value."""
    deadline = monotonic() + timeout
    pause = threading.Event()
    while True:
        value = check()
        if value:
            return value
        if monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout}s: {check}")
        pause.wait(every)
