"""The worker's timer table (runs/worker/timers.py): which duty runs when, and what the
loop may sleep through. Pure: no database, no clock but the numbers given."""

from __future__ import annotations

import time

from runs.worker.timers import Duty, Timers


def _table(*duties: Duty) -> Timers:
    timers = Timers()
    for duty in duties:
        timers.add(duty)
    return timers


def test_due_duties_run_in_table_order_and_come_due_again_after_their_interval() -> None:
    ran: list[str] = []
    timers = _table(
        Duty("a", lambda: 10.0, lambda: ran.append("a")),  # type: ignore[func-returns-value]
        Duty("b", lambda: 20.0, lambda: ran.append("b")),  # type: ignore[func-returns-value]
    )
    now = time.monotonic()
    assert timers.run_due(now) == ["a", "b"]
    assert timers.run_due(now) == []  # neither is due again yet
    assert timers.duties["a"].due - now >= 10.0 - 0.5
    assert timers.next_due() == timers.duties["a"].due


def test_an_action_may_say_when_it_runs_next() -> None:
    timers = _table(Duty("sweep", lambda: 60.0, lambda: 0.25))
    timers.run_due()
    assert timers.duties["sweep"].due - time.monotonic() <= 0.25


def test_an_inactive_duty_neither_runs_nor_wakes_the_loop() -> None:
    ran: list[str] = []
    on = False
    timers = _table(
        Duty("claim", lambda: 1.0, lambda: ran.append("claim"), active=lambda: on)  # type: ignore[func-returns-value]
    )
    assert timers.run_due() == [] and timers.next_due() is None
    on = True
    assert timers.run_due() == ["claim"] and ran == ["claim"]


def test_a_duty_that_does_not_wake_runs_only_at_a_turn_taken_anyway() -> None:
    """The idle worker's connection check: due once a second, but a worker with nothing
    else to do sleeps until its poll, not until the check is due."""
    timers = _table(
        Duty("claim", lambda: 30.0, lambda: None),
        Duty("connection", lambda: 1.0, lambda: None, wakes=False),
    )
    timers.run_due()
    assert timers.next_due() == timers.duties["claim"].due  # the check does not shorten it
    later = time.monotonic() + 2.0
    assert timers.run_due(later) == ["connection"]  # a turn taken anyway runs it


def test_bringing_forward_never_postpones() -> None:
    timers = _table(Duty("claim", lambda: 30.0, lambda: None))
    timers.run_due()
    soon = time.monotonic() + 0.5
    timers.bring_forward("claim", soon)
    assert timers.duties["claim"].due == soon
    timers.bring_forward("claim", soon + 10)
    assert timers.duties["claim"].due == soon
    timers.postpone("claim", 100)
    assert timers.duties["claim"].due > soon + 90
