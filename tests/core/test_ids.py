"""Run ids: valid version-7 UUIDs, ordered by creation time."""

from __future__ import annotations

import time
import uuid

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
