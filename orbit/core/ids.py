"""Run ids that grow with time (UUID version 7, RFC 9562).

Random (version 4) ids scatter every new run, step and attempt across the whole of each
index keyed by run id, so with a long history most index pages a new run touches are cold
and must be read from disk. Time-ordered ids put new entries at the right-hand edge, which
stays in memory: throughput stays the same with millions of finished runs in the table.

And each id a process makes is greater than the one before (RFC 9562's "monotonic random"
method): lists are ordered newest first by the creation time and then the id, and two
runs queued in the same millisecond (a database clock's tick: SQLite's is a millisecond)
or in one batch tie on the time, so with ids random within their millisecond they were
listed in no particular order, not in the order they were queued.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_VERSION = 0x7
_VARIANT = 0b10
#: The 74 bits after the time (rand_a's 12, then rand_b's 62), read as one number.
_TAIL_BITS = 74
_TAIL = (1 << _TAIL_BITS) - 1
#: A new millisecond's tail starts in the lower half, leaving 2**73 steps to grow by.
_START = (1 << (_TAIL_BITS - 1)) - 1
_MILLIS = (1 << 48) - 1

_lock = threading.Lock()
#: The last id this process made: its millisecond and its tail.
_last = (0, 0)


def uuid7() -> uuid.UUID:
    """48 bits of Unix milliseconds, then 74 bits random in a new millisecond and one
    random step past the last id within one (Python 3.14 has `uuid.uuid7`)."""
    return uuid7s(1)[0]


def uuid7s(count: int) -> list[uuid.UUID]:
    """`count` ids as `uuid7` makes one, each greater than the one before, from one
    reading of the clock and one of the random source: a batch of runs is queued in one
    moment, and reading the random source once per id was a tenth of a large batch's
    Python time. A clock that steps back does not make ids smaller: they stay in the
    last millisecond seen until the clock passes it."""
    global _last
    now = time.time_ns() // 1_000_000 & _MILLIS
    random = os.urandom(10 * count)  # 80 bits an id: a fresh tail's 73, or a step's 16
    made = []
    with _lock:
        millis, tail = _last
        for start in range(0, 10 * count, 10):
            bits = int.from_bytes(random[start : start + 10], "big")
            if now > millis:
                millis, tail = now, bits & _START
            else:  # the same millisecond (or the clock went back): one step past the last
                tail += 1 + (bits & 0xFFFF)
                if tail > _TAIL:  # 2**57 ids in a millisecond: borrow the next one
                    millis, tail = millis + 1, bits >> 16 & _START
            made.append(
                uuid.UUID(
                    int=millis << 80
                    | _VERSION << 76
                    | (tail >> 62) << 64
                    | _VARIANT << 62
                    | tail & ((1 << 62) - 1)
                )
            )
        _last = (millis, tail)
    return made
