"""Keyset (cursor) pagination, newest first, stable while rows are inserted.

A cursor names the last row of a page, and the next page is everything strictly after
it in the order, so new rows never shift pages and deep pages cost as little as the
first: the position is found through the index instead of skipping OFFSET rows.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from django.db.models import CharField, DateTimeField, F, Model, Q, QuerySet, Value
from django.db.models.functions import Cast
from django.db.models.lookups import Exact, LessThan, LessThanOrEqual

from orbit.core.exceptions import OrbitError
from runs.store import store

M = TypeVar("M", bound=Model)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class InvalidCursor(OrbitError):
    """The cursor is not one this API returned: pass `next_cursor` from the previous page."""


@dataclass(frozen=True)
class Page(Generic[M]):
    items: list[M]
    next_cursor: str | None


def by_created(queryset: QuerySet[M], *, limit: int, cursor: str | None) -> Page[M]:
    """Order by (created_at, id) descending: the run_*_idx indexes serve this order."""
    queryset = queryset.order_by("-created_at", "-id")
    text_timestamps = store().features.text_timestamps
    if text_timestamps:
        # SQLite stores timestamps as text in more than one format (the database's Now()
        # keeps milliseconds, Python values microseconds), and compares them as text. The
        # cursor therefore keeps the stored text itself, so it compares exactly like ORDER BY.
        queryset = queryset.annotate(_cursor_at=Cast("created_at", CharField()))  # type: ignore[assignment]
    if cursor:
        at, last_id = _decode(cursor, 2)
        bound = (
            Value(at, output_field=CharField())
            if text_timestamps
            else Value(_datetime(at), output_field=DateTimeField())
        )
        # The first condition is the index range; the second breaks ties on created_at.
        queryset = queryset.filter(LessThanOrEqual(F("created_at"), bound)).filter(
            Q(LessThan(F("created_at"), bound))
            | (Q(Exact(F("created_at"), bound)) & Q(id__lt=last_id))
        )
    rows = list(queryset[: limit + 1])
    if len(rows) <= limit:
        return Page(rows, None)
    last = rows[limit - 1]
    at_text = getattr(last, "_cursor_at", None) or last.created_at.isoformat()  # type: ignore[attr-defined]
    return Page(rows[:limit], _encode([at_text, str(last.pk)]))


def by_id(
    queryset: QuerySet[M], *, limit: int, cursor: str | None, window: int | None = None
) -> Page[M]:
    """Order by id descending, for tables whose ids only grow (steps).

    With `window`, a page reads ids in a stretch of at most that many below the cursor,
    for a filter no index serves: the primary key is read newest first and filtered, so a
    rare value would otherwise read the whole table in one request. Such a page may hold
    fewer rows than `limit`, even none, and still have a `next_cursor` (the stretch's
    start): the caller follows it until it is None, as for any page."""
    queryset = queryset.order_by("-id")
    upper: int | None = None
    if cursor:
        (upper,) = _decode(cursor, 1)
        if not isinstance(upper, int) or isinstance(upper, bool) or not 0 < upper < 2**63:
            raise _invalid()  # ids are positive bigints: anything else was not given out
        queryset = queryset.filter(id__lt=upper)
    table = queryset.model._default_manager
    lowest: int | None = None
    if window is not None:
        if upper is None:
            newest = table.order_by("-id").values_list("id", flat=True).first()
            upper = (newest or 0) + 1
        lowest = upper - window
        queryset = queryset.filter(id__gte=lowest)
    rows = list(queryset[: limit + 1])
    if len(rows) > limit:
        return Page(rows[:limit], _encode([rows[limit - 1].pk]))
    if lowest is not None and table.filter(id__lt=lowest).exists():
        return Page(rows, _encode([lowest]))  # the stretch is read; older rows are left
    return Page(rows, None)


def _encode(parts: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def _decode(cursor: str, size: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _invalid() from None
    if not isinstance(parts, list) or len(parts) != size:
        raise _invalid()
    if size == 2:
        at, last_id = parts
        if not isinstance(at, str) or not isinstance(last_id, str) or len(at) > 40:
            raise _invalid()
        try:
            uuid.UUID(last_id)
        except ValueError:
            raise _invalid() from None
    return parts


def _datetime(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _invalid() from None
    if moment.tzinfo is None:
        raise _invalid()
    return moment


def _invalid() -> InvalidCursor:
    return InvalidCursor(field="cursor")
