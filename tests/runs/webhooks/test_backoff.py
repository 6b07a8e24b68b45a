"""runs/webhooks/backoff.py: when a failed delivery is tried again, without a database."""

from __future__ import annotations

import pytest

from runs.webhooks.backoff import RetrySchedule


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [
        (1, 10.0),  # the first failure waits the base
        (2, 20.0),  # then doubles
        (3, 40.0),
        (9, 2560.0),
        (10, 3600.0),  # capped
        (30, 3600.0),  # and stays capped (no overflow)
    ],
)
def test_each_wait_doubles_up_to_the_cap(attempt, delay):
    assert RetrySchedule(base=10, cap=3600, max_attempts=50).delay(attempt) == delay


def test_after_the_last_attempt_there_is_no_next():
    schedule = RetrySchedule(base=1, cap=100, max_attempts=3)
    assert [schedule.next_delay(n) for n in range(1, 5)] == [1.0, 2.0, None, None]


def test_the_schedule_lists_every_wait_of_a_delivery_that_always_fails():
    assert RetrySchedule(base=10, cap=60, max_attempts=5).schedule() == [10, 20, 40, 60]
    assert RetrySchedule(max_attempts=1).schedule() == []


def test_attempts_are_numbered_from_one():
    with pytest.raises(ValueError, match="attempts are numbered from 1, not 0"):
        RetrySchedule().delay(0)


def test_the_defaults_are_the_documented_ones(settings):
    assert RetrySchedule.from_settings() == RetrySchedule(base=10.0, cap=3600.0, max_attempts=8)
    settings.ORBIT_WEBHOOK_BACKOFF_BASE = 0.5
    settings.ORBIT_WEBHOOK_MAX_ATTEMPTS = 2
    assert RetrySchedule.from_settings().schedule() == [0.5]
