"""Retry policy as data: it answers "when is the next attempt, or never"; loops just ask it."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: delay = uniform(0, min(cap, base * factor**n)).

    Full jitter (rather than a fixed delay) spreads retries of many runs that failed
    together, so a recovering service is not hit by all of them at the same instant.
    """

    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0:
            raise ValueError("backoff base and cap must not be negative")
        if self.factor < 1:
            raise ValueError("backoff factor must be at least 1")

    def ceiling(self, failures: int) -> float:
        """The longest delay after the `failures`-th failed attempt (1-based)."""
        return float(min(self.cap, self.base * self.factor ** max(failures - 1, 0)))

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        ceiling = self.ceiling(failures)
        if not self.jitter:
            return ceiling
        # Full jitter, but never less than a tenth of the ceiling, so delays visibly grow.
        return (rng or random).uniform(ceiling / 10, ceiling)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 0
    backoff: Backoff = Backoff()

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise ValueError(f"max_retries must be an integer, not {self.max_retries!r}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, not {self.max_retries}")

    def next_delay(self, failures: int, rng: random.Random | None = None) -> float | None:
        """Seconds to wait before retrying after `failures` failed attempts, or None: give up."""
        if failures > self.max_retries:
            return None
        return self.backoff.delay(failures, rng)
