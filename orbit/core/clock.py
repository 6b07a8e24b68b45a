"""The database's clock: the one "now" that workers on every host agree on.

Built from Django's `Now()` compiled for the connection, so each backend's compiler picks
its own SQL (`STATEMENT_TIMESTAMP()` on PostgreSQL: the statement's time, which moves on
inside a transaction, where `now()` would stand still) and its converters turn the value
into an aware datetime. No vendor check here: a database Django supports brings its own.
"""

from __future__ import annotations

from datetime import datetime

from django.db import DEFAULT_DB_ALIAS
from django.db.models.functions import Now
from django.db.models.sql import Query


def db_now(using: str = DEFAULT_DB_ALIAS) -> datetime:
    """The database's current time, timezone-aware (UTC), in one `SELECT` with no table."""
    query = Query(None)
    query.add_annotation(Now(), "now")
    rows = query.get_compiler(using=using).results_iter(tuple_expected=True)
    ((now,),) = rows
    return now  # type: ignore[no-any-return]
