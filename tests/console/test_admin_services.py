from __future__ import annotations

import pytest
from django.urls import reverse

from services.models import VeryfiDocument
from services.storage import document_fields
from tests.factories import PipelineFactory, RunFactory
from tests.veryfi_standin import receipt

pytestmark = pytest.mark.django_db


@pytest.fixture
def document():
    run = RunFactory(pipeline=PipelineFactory(name="document-processing"))
    response = receipt(
        42, {"external_id": f"{run.id}:veryfi-process"}, "https://veryfi.example", "pdf"
    )
    return VeryfiDocument.objects.create(
        veryfi_id=42,
        run=run,
        s3_key="documents/x/receipt.pdf",
        **{k: v for k, v in document_fields(response).items()},
    )


def test_the_list_shows_vendor_total_date_and_links(admin_client, document):
    page = admin_client.get(reverse("admin:services_veryfidocument_changelist")).content.decode()
    assert "Orbit Coffee Roasters" in page
    assert "12.5 USD" in page
    assert "Nov. 27, 2025" in page
    assert f'href="{reverse("admin:runs_run_change", args=[document.run_id])}"' in page
    assert 'href="https://veryfi.example/files/42"' in page


def test_the_document_page_shows_the_raw_json_read_only(admin_client, document):
    page = admin_client.get(
        reverse("admin:services_veryfidocument_change", args=[document.pk])
    ).content.decode()
    assert "&quot;invoice_number&quot;: &quot;A-1042&quot;" in page
    assert "<pre" in page
    assert 'name="vendor_name"' not in page  # nothing is editable
    assert 'type="submit" value="Save"' not in page


def test_documents_cannot_be_added_by_hand(admin_client):
    assert admin_client.get(reverse("admin:services_veryfidocument_add")).status_code == 403


def test_search_by_vendor(admin_client, document):
    url = reverse("admin:services_veryfidocument_changelist")
    assert "Orbit Coffee Roasters" in admin_client.get(url, {"q": "coffee"}).content.decode()
    assert "Orbit Coffee Roasters" not in admin_client.get(url, {"q": "bakery"}).content.decode()
