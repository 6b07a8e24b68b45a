"""When a failed webhook delivery is tried again: a pure function of its attempts.

Attempt n (1-based) that failed waits `base * 2 ** (n - 1)` seconds, capped at `cap`,
before the next; after `max_attempts` attempts the delivery fails for good. No jitter:
deliveries are few, and a schedule an operator can predict from the docs is worth more.
"""

from __future__ import annotations

from dataclasses import dataclass

from orbit.core.conf import orbit_settings


@dataclass(frozen=True)
class RetrySchedule:
    base: float = 10.0
    cap: float = 3600.0
    max_attempts: int = 8

    @classmethod
    def from_settings(cls) -> RetrySchedule:
        return cls(
            base=orbit_settings.webhook_backoff_base,
            cap=orbit_settings.webhook_backoff_cap,
            max_attempts=orbit_settings.webhook_max_attempts,
        )

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1 for the first)."""
        if attempt < 1:
            raise ValueError(f"attempts are numbered from 1, not {attempt}")
        return float(min(self.cap, self.base * 2 ** (attempt - 1)))

    def next_delay(self, attempts: int) -> float | None:
        """After `attempts` failed attempts: seconds until the next, or None: give up."""
        if attempts >= self.max_attempts:
            return None
        return self.delay(attempts)

    def schedule(self) -> list[float]:
        """Every wait a delivery that always fails goes through (for the docs and admin)."""
        return [self.delay(n) for n in range(1, self.max_attempts)]
