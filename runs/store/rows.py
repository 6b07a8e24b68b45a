"""Whole rows for the PostgreSQL store's INSERTs, derived from the models.

The statements insert `jsonb_populate_record(NULL::table, defaults || values)`: the row
type is the table's own, so no statement lists columns, and `defaults` holds every column
with the default its model field declares. A field added to a model is therefore written
with its default by PostgreSQL exactly as the ORM writes it on SQLite, instead of
breaking one database alone. Only the primary key and the columns the database stamps
(`db_default=Now()`) are left out; the statements set those themselves, and
tests/runs/store/test_rows.py checks that every such column is set by every INSERT.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from functools import cache
from typing import Any

from django.db import models
from django.db.models.functions import Now


def _plain(value: Any) -> Any:
    """A default as JSON that PostgreSQL's record input reads back as the same value."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, models.Choices):
        return value.value
    return value


def stamped_columns(model: type[models.Model]) -> frozenset[str]:
    """The columns the database fills in: `db_default=Now()`."""
    return frozenset(
        str(field.column)
        for field in model._meta.concrete_fields
        if isinstance(getattr(field, "db_default", None), Now)
    )


@cache
def defaults_json(model: type[models.Model]) -> str:
    """Every column but the primary key and the stamped ones, at its field's default."""
    stamped = stamped_columns(model)
    row: dict[str, Any] = {}
    for field in model._meta.concrete_fields:
        if field.primary_key or field.column in stamped:
            continue
        if field.has_db_default():
            raise TypeError(
                f"{model._meta.label}.{field.name} has a db_default other than Now(): "
                "runs/store/rows.py cannot derive it; give it a Python default"
            )
        row[str(field.column)] = _plain(field.get_default())
    return json.dumps(row)
