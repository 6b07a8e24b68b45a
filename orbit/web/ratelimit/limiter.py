"""Counting requests per key in fixed windows, in the database, so every web process (on
every host) shares one count; process memory would give each its own allowance.

One statement counts all of a request's keys: an upsert that starts a new window or adds
one to the current window, and returns the counts. It is atomic on PostgreSQL and SQLite
alike, so concurrent requests never lose an increment.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import connection

from orbit.core.conf import Rate
from orbit.web.ratelimit.models import Window

#: Where "now" comes from; tests swap it to move to the next window without waiting.
clock: Callable[[], float] = time.time


@dataclass(frozen=True)
class Verdict:
    """The outcome of counting one request: allowed, or refused for `retry_after` seconds."""

    allowed: bool
    retry_after: int = 0
    key: str = ""


ALLOWED = Verdict(allowed=True)


def hit(keys: Iterable[str], rate: Rate) -> Verdict:
    """Count one request against each key; refused if any key is over `rate` in its window."""
    keys = list(dict.fromkeys(keys))  # one row may be updated once per statement
    if not keys:
        return ALLOWED
    now = clock()
    started = int(now) - int(now) % rate.seconds
    rows = _count(keys, started)
    if any(count == 1 for _, _, count in rows):
        _forget_old_windows(started - 2 * max(rate.seconds, 86400))
    over = [(key, start) for key, start, count in rows if count > rate.limit]
    if not over:
        return ALLOWED
    key, start = max(over, key=lambda row: row[1])
    return Verdict(
        allowed=False, retry_after=max(1, math.ceil(start + rate.seconds - now)), key=key
    )


def _count(keys: list[str], started: int) -> list[tuple[str, int, int]]:
    table = connection.ops.quote_name(Window._meta.db_table)
    key, start, count = (connection.ops.quote_name(c) for c in ("key", "started", "count"))
    values = ", ".join(["(%s, %s, 1)"] * len(keys))
    # A row whose window is over starts again at one; the newest window wins, so hosts
    # whose clocks differ slightly never reset each other's counts back and forth.
    sql = f"""
        INSERT INTO {table} ({key}, {start}, {count}) VALUES {values}
        ON CONFLICT ({key}) DO UPDATE SET
            {count} = CASE WHEN excluded.{start} > {table}.{start} THEN 1
                      ELSE {table}.{count} + 1 END,
            {start} = CASE WHEN excluded.{start} > {table}.{start} THEN excluded.{start}
                      ELSE {table}.{start} END
        RETURNING {key}, {start}, {count}
    """
    params: list[str | int] = []
    for k in keys:
        params += [k, started]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(str(r[0]), int(r[1]), int(r[2])) for r in cursor.fetchall()]


def _forget_old_windows(before: int) -> None:
    Window.objects.filter(started__lt=before).delete()


def digest(value: str) -> str:
    """A short stable stand-in for a client-chosen value (a token, a username) in a key."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
