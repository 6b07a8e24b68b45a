"""Veryfi's answer as a `VeryfiDocument` row, written as an upsert on the Veryfi id."""

from __future__ import annotations

import logging
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from services.models import VeryfiDocument

logger = logging.getLogger(__name__)

_AMOUNT_PLACES = Decimal("0.001")
_AMOUNT_LIMIT = Decimal("1e13")  # what max_digits=16, decimal_places=3 can hold


def amount(value: Any) -> Decimal | None:
    """A JSON number as a Decimal; None for null and for anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value)).quantize(_AMOUNT_PLACES)
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() and abs(number) < _AMOUNT_LIMIT else None


def document_date(value: Any) -> date | None:
    """Veryfi's `YYYY-MM-DD HH:MM:SS` (or just the date) as a date; None if unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    return None


def _text(value: Any, limit: int) -> str:
    return "" if value is None else str(value)[:limit]


def document_fields(response: dict[str, Any]) -> dict[str, Any]:
    """The model's fields from a Veryfi document (missing fields are null there, blank here)."""
    vendor = response.get("vendor")
    if not isinstance(vendor, dict):
        vendor = {}
    line_items = response.get("line_items")
    return {
        "external_id": _text(response.get("external_id"), 255),
        "status": _text(response.get("status"), 32),
        "document_type": _text(response.get("document_type"), 64),
        "vendor_name": _text(vendor.get("name") or vendor.get("raw_name"), 255),
        "date": document_date(response.get("date")),
        "currency_code": _text(response.get("currency_code"), 8),
        "subtotal": amount(response.get("subtotal")),
        "tax": amount(response.get("tax")),
        "total": amount(response.get("total")),
        "line_items": line_items if isinstance(line_items, list) else [],
        "ocr_text": _text(response.get("ocr_text"), 1_000_000),
        "response": response,
    }


def store_document(
    response: dict[str, Any],
    *,
    run_id: Any,
    s3: dict[str, Any],
    user_id: Any = None,
    log: logging.Logger = logger,
) -> tuple[VeryfiDocument, bool]:
    """Insert or update the row for `response["id"]`; True when it was created."""
    fields = document_fields(response)
    fields.update(
        run_id=run_id,
        s3_bucket=_text(s3.get("bucket"), 255),
        s3_key=_text(s3.get("key"), 1024),
        s3_url=_text(s3.get("url"), 2048),
        user_id=_existing_user(user_id, log),
    )
    with transaction.atomic():
        # update_or_create locks the row it finds and falls back to a get when a
        # concurrent insert wins the unique constraint, so two writers cannot duplicate.
        return VeryfiDocument.objects.update_or_create(veryfi_id=response["id"], defaults=fields)


def _existing_user(user_id: Any, log: logging.Logger) -> int | None:
    """The user to file the document under; a user deleted meanwhile is not worth failing for."""
    if user_id in (None, ""):
        return None
    try:
        pk = int(user_id)
    except (TypeError, ValueError):
        log.warning("Ignoring userId %r: not a user id", user_id)
        return None
    if not get_user_model().objects.filter(pk=pk).exists():
        log.warning("Ignoring userId %s: no such user", pk)
        return None
    return pk
