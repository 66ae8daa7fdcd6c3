"""A deadline around every database call (SPEC §7): a hung connection is an outage.

TCP keepalives and the server's statement timeout catch most failures, but not a
server that stopped answering while its sockets stay open (a paused process, a
black-holed network path with pending data). So each call runs on a helper thread
and the caller waits at most `seconds`; past that the call is abandoned (its
thread is left to finish or fail on its own, on a connection that is discarded),
and the caller sees StoreUnavailable.
"""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from snapshotter.errors import StoreUnavailable

T = TypeVar("T")


class Deadline:
    def __init__(self, seconds: float, *, on_timeout: Callable[[], None] = lambda: None) -> None:
        self.seconds = seconds
        self.on_timeout = on_timeout
        self._lock = threading.Lock()
        self._executor = self._new_executor()

    @staticmethod
    def _new_executor() -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="database")

    def run(self, fn: Callable[[], T]) -> T:
        with self._lock:
            executor = self._executor
        future = executor.submit(fn)
        try:
            return future.result(timeout=self.seconds)
        except FutureTimeout:
            with self._lock:
                if self._executor is executor:
                    self._executor = self._new_executor()
            executor.shutdown(wait=False, cancel_futures=True)
            self.on_timeout()
            raise StoreUnavailable(
                f"no answer from the database within {self.seconds:g}s"
            ) from None

    def close(self) -> None:
        with self._lock:
            self._executor.shutdown(wait=False, cancel_futures=True)
