"""Run ids that grow with time (UUID version 7, RFC 9562).

Random (version 4) ids scatter every new run, step and attempt across the whole of each
index keyed by run id, so with a long history most index pages a new run touches are cold
and must be read from disk. Time-ordered ids put new entries at the right-hand edge, which
stays in memory: throughput stays the same with millions of finished runs in the table.
"""

from __future__ import annotations

import os
import time
import uuid

_VERSION = 0x7
_VARIANT = 0b10


def uuid7() -> uuid.UUID:
    """48 bits of Unix milliseconds, then 74 random bits (Python 3.14 has `uuid.uuid7`)."""
    millis = time.time_ns() // 1_000_000 & ((1 << 48) - 1)
    random = int.from_bytes(os.urandom(10), "big")  # 80 bits; 74 are used
    value = millis << 80
    value |= _VERSION << 76
    value |= (random >> 68 & 0xFFF) << 64  # rand_a: 12 bits
    value |= _VARIANT << 62
    value |= random & ((1 << 62) - 1)  # rand_b: 62 bits
    return uuid.UUID(int=value)
