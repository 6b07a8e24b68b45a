"""When a worker's claim also takes runs under flow limits (runs/worker/pacing.py): pure
decisions, tested without a database."""

from __future__ import annotations

import pytest

from runs.worker.pacing import (
    ANNOUNCED_LIMITED_GAP_SECONDS,
    ANNOUNCED_LIMITED_LAG_SECONDS,
    LIMITS_BUSY_RETRY_SECONDS,
    LIMITS_REFRESH_SECONDS,
    LimitedPacing,
)

POLL = 1.0


def pacing(
    *, limits: bool = True, queue_limited: bool = False
) -> tuple[LimitedPacing, list[float]]:
    asked: list[float] = []

    def has_limits() -> bool:
        asked.append(1)
        return limits

    return LimitedPacing(
        poll_interval=POLL, queue_limited=queue_limited, has_limits=has_limits
    ), asked


def test_no_limit_anywhere_no_claim_under_limits_and_the_question_is_asked_rarely():
    paced, asked = pacing(limits=False)
    assert not any(paced.wanted(t / 10) for t in range(40))  # 4 s of claims
    assert len(asked) == 1
    assert not paced.wanted(LIMITS_REFRESH_SECONDS + 0.5)
    assert len(asked) == 2


def test_a_limited_queue_wants_every_due_claim_without_asking():
    paced, asked = pacing(limits=False, queue_limited=True)
    assert paced.wanted(0.0) and asked == []


def test_after_a_claim_under_limits_the_next_comes_a_poll_interval_later():
    paced, _ = pacing()
    assert paced.wanted(10.0)
    paced.claimed(10.0, limited=True, filled=False, retry_after=None)
    assert not paced.wanted(10.5)
    assert paced.wanted(10.0 + POLL)


def test_a_filled_batch_under_limits_claims_again_at_once():
    paced, _ = pacing()
    paced.claimed(10.0, limited=True, filled=True, retry_after=None)
    assert paced.wanted(10.0)


def test_a_full_rate_window_brings_the_next_claim_to_its_admission():
    paced, _ = pacing()
    paced.claimed(10.0, limited=True, filled=False, retry_after=0.25)
    assert not paced.wanted(10.2)
    assert paced.wanted(10.25)
    assert paced.claim_in(10.0) == pytest.approx(0.25)


def test_a_freed_slot_claims_under_limits_at_once():
    paced, _ = pacing()
    paced.claimed(10.0, limited=True, filled=False, retry_after=None)
    paced.freed()
    assert paced.wanted(10.01)


def test_an_announcement_owes_a_claim_under_limits_just_after_the_plain_one():
    paced, _ = pacing()
    paced.claimed(10.0, limited=True, filled=False, retry_after=None)
    now = 10.0 + ANNOUNCED_LIMITED_GAP_SECONDS + 0.1
    paced.heard(now, 0.0)
    assert not paced.wanted(now)  # the claim at once is the plain one
    assert paced.claim_in(now) == pytest.approx(ANNOUNCED_LIMITED_LAG_SECONDS)
    assert paced.wanted(now + ANNOUNCED_LIMITED_LAG_SECONDS)
    paced.claimed(now + ANNOUNCED_LIMITED_LAG_SECONDS, limited=True, filled=False, retry_after=None)
    assert paced.claim_in(now + 0.01) is None  # owed no more


def test_a_stream_of_announcements_claims_under_limits_at_most_every_gap():
    paced, _ = pacing()
    paced.claimed(10.0, limited=True, filled=False, retry_after=None)
    paced.heard(10.001, 0.0)
    assert not paced.wanted(10.01)
    assert paced.wanted(10.0 + ANNOUNCED_LIMITED_GAP_SECONDS)


def test_a_delayed_announcement_waits_for_its_run():
    paced, _ = pacing()
    paced.claimed(10.0, limited=True, filled=False, retry_after=None)
    paced.heard(10.5, 0.3)
    assert not paced.wanted(10.7)
    assert paced.wanted(10.8 + ANNOUNCED_LIMITED_LAG_SECONDS)


def test_plain_claims_keep_the_pacing_but_learn_the_rate_wait():
    paced, _ = pacing()
    paced.claimed(10.0, limited=True, filled=False, retry_after=None)
    paced.claimed(10.2, limited=False, filled=False, retry_after=None)
    assert not paced.wanted(10.5) and paced.wanted(11.0)


def test_a_busy_limits_lock_means_another_try_soon_even_on_an_idle_worker():
    paced, _ = pacing()
    assert paced.wanted(10.0)
    paced.claimed(10.0, limited=True, filled=False, retry_after=None, busy=True)
    assert not paced.wanted(10.0 + LIMITS_BUSY_RETRY_SECONDS / 2)
    assert paced.wanted(10.0 + LIMITS_BUSY_RETRY_SECONDS)
    # owed: the loop comes back for it, however idle
    assert paced.claim_in(10.0) == pytest.approx(LIMITS_BUSY_RETRY_SECONDS)
    paced.claimed(10.0 + LIMITS_BUSY_RETRY_SECONDS, limited=True, filled=False, retry_after=None)
    assert paced.claim_in(10.1) is None  # made: nothing owed any more


def test_with_no_limit_anywhere_an_announcement_owes_nothing():
    # A retry's release, a recovery or a stopping worker announces without "plain"; with
    # no limit anywhere the worker used to owe a claim under limits it never made, and
    # claimed again on every turn of its loop.
    paced, _ = pacing(limits=False)
    paced.heard(10.0, 0.0)
    now = 10.0 + ANNOUNCED_LIMITED_LAG_SECONDS
    assert not paced.wanted(now)
    paced.claimed(now, limited=False, filled=False, retry_after=None)
    assert paced.claim_in(now + 0.001) is None


def test_a_freed_slot_with_no_limit_anywhere_owes_nothing_either():
    paced, _ = pacing(limits=False)
    paced.freed()
    assert not paced.wanted(10.0)
    assert paced.claim_in(10.0) is None


def test_a_plain_announcement_is_answered_by_the_plain_claim_and_the_due_one_follows():
    paced, _ = pacing()
    paced.claimed(10.0, limited=True, filled=False, retry_after=None)
    now = 10.0 + POLL  # the claim under limits a poll interval brings is due
    paced.heard_plain(0.0)
    assert not paced.wanted(now)  # the announced run does not wait for the limits' lock
    assert paced.claim_in(now) == 0.0  # the claim under limits on the next turn
    assert paced.wanted(now + 0.001)
    paced.claimed(now + 0.001, limited=True, filled=False, retry_after=None)
    assert paced.claim_in(now + 0.002) is None


def test_an_owed_claim_under_limits_is_not_put_off_twice():
    paced, _ = pacing()
    paced.claimed(10.0, limited=True, filled=False, retry_after=None)
    now = 10.0 + POLL
    paced.heard_plain(0.0)
    assert not paced.wanted(now)
    paced.heard_plain(0.0)  # a stream of plain enqueues does not starve limited runs
    assert paced.wanted(now + 0.001)


def test_a_freed_slot_is_claimed_under_limits_even_as_a_plain_run_is_announced():
    paced, _ = pacing()
    paced.claimed(10.0, limited=True, filled=False, retry_after=None)
    paced.freed()
    paced.heard_plain(0.0)
    assert paced.wanted(10.01)


def test_a_delayed_plain_announcement_does_not_touch_the_next_claim():
    paced, _ = pacing()
    paced.claimed(10.0, limited=True, filled=False, retry_after=None)
    paced.heard_plain(0.5)
    assert paced.wanted(10.0 + POLL)
