"""The database's clock: the one "now" that workers on every host agree on.

Built from Django's `Now()` compiled for the connection, so each backend's compiler picks
its own SQL (`STATEMENT_TIMESTAMP()` on PostgreSQL: the statement's time, which moves on
inside a transaction, where `now()` would stand still) and its converters turn the value
into an aware datetime. No vendor check here: a database Django supports brings its own.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import DEFAULT_DB_ALIAS
from django.db.models.functions import Now
from django.db.models.sql import Query
from django.utils import timezone


def db_now(using: str = DEFAULT_DB_ALIAS) -> datetime:
    """The database's current time, timezone-aware (UTC), in one `SELECT` with no table."""
    query = Query(None)
    query.add_annotation(Now(), "now")
    rows = query.get_compiler(using=using).results_iter(tuple_expected=True)
    ((now,),) = rows
    return now  # type: ignore[no-any-return]


def in_utc(moment: datetime) -> datetime | None:
    """`moment` (naive: in TIME_ZONE) in UTC, as the databases compare it; None where the
    shift leaves the calendar (9999-12-31T23:59:59-05:00 is in the year 10000), which a
    caller must refuse: passed on, it overflows in the database adapter (SQLite converts
    in Python), a 500."""
    aware = timezone.make_aware(moment) if timezone.is_naive(moment) else moment
    try:
        return aware.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
