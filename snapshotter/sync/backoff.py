"""Exponential backoff with jitter, as client-go's reflector uses (0.8 s -> 30 s)."""

import random


class Backoff:
    def __init__(
        self,
        *,
        initial: float = 0.8,
        maximum: float = 30.0,
        factor: float = 2.0,
        jitter: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._current = initial

    def next(self) -> float:
        """The next delay: the current step plus up to `jitter` x step, capped."""
        delay = min(self.maximum, self._current * (1 + self.jitter * self._rng.random()))
        self._current = min(self.maximum, self._current * self.factor)
        return delay

    def reset(self) -> None:
        self._current = self.initial
