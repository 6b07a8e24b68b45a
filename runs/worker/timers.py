"""A worker's periodic duties, each named in one table with its interval and its action.

The loop asks the table when the next duty is due (to know how long it may sleep) and
runs whatever is due; an action may say when it wants to run next (the recovery sweep
runs again as soon as the next lease expires), and an event may bring a duty forward
(a NOTIFY brings the claim forward).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


@dataclass
class Duty:
    """`action()` every `interval()` seconds while `active()`; the action may return
    the seconds until it wants to run again instead. A duty that does not `wake` the
    loop runs at the first turn the loop takes anyway once it is due (a check worth
    making now and then, not worth a wake-up of its own)."""

    name: str
    interval: Callable[[], float]
    action: Callable[[], float | None]
    active: Callable[[], bool] = lambda: True
    wakes: bool = True
    due: float = 0.0


@dataclass
class Timers:
    duties: dict[str, Duty] = field(default_factory=dict)

    def add(self, duty: Duty) -> None:
        self.duties[duty.name] = duty

    def next_due(self) -> float | None:
        """When the earliest active duty that wakes the loop is due (monotonic seconds);
        None: none is."""
        due = [d.due for d in self.duties.values() if d.wakes and d.active()]
        return min(due) if due else None

    def bring_forward(self, name: str, at: float | None = None) -> None:
        """Run `name` no later than `at` (now, by default)."""
        duty = self.duties[name]
        duty.due = min(duty.due, time.monotonic() if at is None else at)

    def postpone(self, name: str, seconds: float) -> None:
        """Next run of `name` in `seconds`, whatever was planned."""
        self.duties[name].due = time.monotonic() + seconds

    def run_due(self, now: float | None = None) -> list[str]:
        """Run every active duty that is due, in table order; the names of those run."""
        now = time.monotonic() if now is None else now
        ran = []
        for duty in list(self.duties.values()):
            if not duty.active() or duty.due > now:
                continue
            again = duty.action()
            duty.due = time.monotonic() + (duty.interval() if again is None else again)
            ran.append(duty.name)
        return ran
