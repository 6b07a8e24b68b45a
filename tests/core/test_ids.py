"""Run ids: valid version-7 UUIDs, ordered by creation time."""

from __future__ import annotations

import time
import uuid

from orbit.core import ids
from orbit.core.ids import uuid7, uuid7s


def test_ids_are_version_7_rfc_9562_uuids():
    value = uuid7()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert abs((value.int >> 80) - time.time_ns() // 1_000_000) < 5_000


def test_ids_made_later_sort_later_and_never_repeat():
    earlier = [uuid7() for _ in range(1000)]
    time.sleep(0.002)  # the next millisecond: ordering holds across milliseconds
    later = uuid7()
    assert all(e < later for e in earlier)
    assert len(set(earlier)) == 1000


def test_a_batch_of_ids_is_as_many_distinct_version_7_ids_of_this_moment():
    batch = uuid7s(1000)
    assert len(set(batch)) == 1000
    assert {(v.version, v.variant) for v in batch} == {(7, uuid.RFC_4122)}
    assert all(abs((v.int >> 80) - time.time_ns() // 1_000_000) < 5_000 for v in batch)
    assert uuid7s(0) == []


def test_ids_made_in_one_millisecond_grow_in_the_order_they_were_made(monkeypatch):
    """Two runs queued in the same millisecond are listed newest first by their ids."""
    monkeypatch.setattr(ids, "_last", (0, 0))  # this process's last id, as it was after
    moment = time.time_ns()
    monkeypatch.setattr(time, "time_ns", lambda: moment)
    made = [uuid7() for _ in range(2000)] + uuid7s(2000)
    assert made == sorted(made) and len(set(made)) == 4000
    assert {v.int >> 80 for v in made} == {moment // 1_000_000}
    assert {(v.version, v.variant) for v in made} == {(7, uuid.RFC_4122)}


def test_a_clock_that_steps_back_does_not_make_smaller_ids(monkeypatch):
    monkeypatch.setattr(ids, "_last", (0, 0))
    moment = time.time_ns()
    monkeypatch.setattr(time, "time_ns", lambda: moment)
    before = uuid7()
    monkeypatch.setattr(time, "time_ns", lambda: moment - 5 * 10**9)  # 5 s back
    after = uuid7s(3)
    assert before < after[0] < after[1] < after[2]
