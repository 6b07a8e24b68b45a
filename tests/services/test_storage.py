from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.models import VeryfiDocument
from services.storage import amount, document_date, document_fields, store_document
from tests.factories import PipelineFactory, RunFactory
from tests.veryfi_standin import receipt

S3 = {
    "bucket": "b",
    "key": "documents/r/s3-upload/receipt.pdf",
    "url": "http://s3.local/b/documents/r/s3-upload/receipt.pdf",
}


def veryfi_document(document_id: int = 7, **changes):
    return {
        **receipt(document_id, {"external_id": "run:veryfi-process"}, "http://veryfi.local", "pdf"),
        **changes,
    }


def test_fields_are_read_from_veryfis_document():
    fields = document_fields(veryfi_document())
    assert {k: v for k, v in fields.items() if k not in ("response", "line_items", "ocr_text")} == {
        "external_id": "run:veryfi-process",
        "status": "processed",
        "document_type": "receipt",
        "vendor_name": "Orbit Coffee Roasters",
        "date": date(2025, 11, 27),
        "currency_code": "USD",
        "subtotal": Decimal("11.500"),
        "tax": Decimal("1.000"),
        "total": Decimal("12.500"),
    }
    assert [item["description"] for item in fields["line_items"]] == [
        "Flat white",
        "Almond croissant",
    ]


def test_missing_fields_are_blank_not_errors():
    fields = document_fields({"id": 1})
    assert fields["vendor_name"] == ""
    assert fields["date"] is None
    assert fields["total"] is None
    assert fields["line_items"] == []


def test_the_raw_vendor_name_is_used_when_the_name_is_missing():
    assert (
        document_fields({"vendor": {"name": None, "raw_name": "ACME LTD"}})["vendor_name"]
        == "ACME LTD"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, Decimal("12.000")),  # integers are amounts too
        (12.345, Decimal("12.345")),
        (0.1 + 0.2, Decimal("0.300")),  # floats are read through their shortest repr
        ("9.99", Decimal("9.990")),
        (None, None),
        (True, None),  # a boolean is not an amount
        ("n/a", None),
        (float("nan"), None),
        (1e20, None),  # more than the column holds
    ],
)
def test_amounts(value, expected):
    assert amount(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-11-27 08:42:00", date(2025, 11, 27)),
        ("2025-11-27", date(2025, 11, 27)),
        ("27/11/2025", None),
        ("", None),
        (None, None),
    ],
)
def test_dates(value, expected):
    assert document_date(value) == expected


@pytest.mark.django_db
def test_storing_the_same_veryfi_document_twice_keeps_one_row():
    run = RunFactory(pipeline=PipelineFactory(name="document-processing"))
    first, created = store_document(veryfi_document(), run_id=run.id, s3=S3)
    assert created
    second, created_again = store_document(veryfi_document(total=13.0), run_id=run.id, s3=S3)
    assert not created_again
    assert second.pk == first.pk
    assert VeryfiDocument.objects.count() == 1
    stored = VeryfiDocument.objects.get()
    assert (stored.total, stored.run_id, stored.s3_key) == (Decimal("13.000"), run.id, S3["key"])
    assert stored.response["vendor"]["name"] == "Orbit Coffee Roasters"


@pytest.mark.django_db
def test_an_unknown_user_is_left_empty(caplog):
    run = RunFactory(pipeline=PipelineFactory(name="document-processing"))
    document, _ = store_document(veryfi_document(), run_id=run.id, s3=S3, user_id=404)
    assert document.user_id is None
    assert "Ignoring userId 404: no such user" in caplog.messages


@pytest.mark.django_db
def test_the_image_url_is_only_an_http_link():
    document = VeryfiDocument(veryfi_id=1, response={"img_url": "javascript:alert(1)"})
    assert document.image_url == ""
    document.response = {"img_url": "https://cdn.veryfi.com/r.png"}
    assert document.image_url == "https://cdn.veryfi.com/r.png"
