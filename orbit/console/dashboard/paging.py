"""Paging through millions of runs without counting them.

`COUNT(*)` over a large table reads every row. Lists here either estimate (PostgreSQL's
planner statistics for an unfiltered table) or count no further than they could show
(`COUNT_LIMIT`), and the dashboard pages by keyset (created_at, id), which costs the same
on the first page and the ten-thousandth.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.core.paginator import Paginator
from django.db.models import Q, QuerySet, Subquery

from runs.store import store

COUNT_LIMIT = 10_000


def estimated_count(queryset: QuerySet[Any]) -> int:
    """The row count when it is cheap to know, else an estimate or `COUNT_LIMIT + 1`.

    Unfiltered on PostgreSQL: `pg_class.reltuples`, kept by (auto)ANALYZE. Small tables,
    and anything filtered, are counted, but never past `COUNT_LIMIT + 1` rows.
    """
    unfiltered = not queryset.query.where.children and not queryset.query.distinct
    if unfiltered:
        estimate = store().estimated_rows(queryset.model)
        if estimate is not None and estimate > COUNT_LIMIT:
            return estimate
    return queryset.order_by().values("pk")[: COUNT_LIMIT + 1].count()


def is_capped(count: int) -> bool:
    """True when `count` came from the cap: there may be many more rows."""
    return count == COUNT_LIMIT + 1


class EstimatedCountPaginator(Paginator):  # type: ignore[type-arg]
    """Django's paginator with `estimated_count` instead of COUNT(*): the admin's lists use it."""

    @cached_property
    def count(self) -> int:
        return estimated_count(self.object_list)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Cursor:
    """A position in a list ordered newest first: the id of the last row shown before.

    Rows are compared with the cursor row's stored `created_at`, read by the database in
    the same query, so values never round-trip through Python (SQLite stores Now() with
    millisecond text, which a Python datetime would not compare equal to).
    """

    id: uuid.UUID

    def encode(self) -> str:
        return str(self.id)

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        """The cursor in `text`, or None for anything malformed (the list starts over)."""
        try:
            return cls(uuid.UUID(text))
        except ValueError:
            return None


@dataclass
class KeysetPage:
    rows: list[Any]
    next_cursor: str | None


def keyset_page(queryset: QuerySet[Any], cursor: Cursor | None, size: int) -> KeysetPage:
    """`size` rows after `cursor`, newest first; uses the (created_at, id) indexes."""
    if cursor is not None:
        at = Subquery(queryset.model.objects.filter(id=cursor.id).values("created_at")[:1])
        queryset = queryset.filter(Q(created_at__lt=at) | Q(created_at=at, id__lt=cursor.id))
    rows = list(queryset.order_by("-created_at", "-id")[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return KeysetPage(rows, Cursor(rows[-1].id).encode() if rows and more else None)
