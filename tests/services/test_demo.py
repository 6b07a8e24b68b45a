import os

import pytest
from django.core.management import call_command

from services.models import VeryfiDocument

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_demo_processes_the_sample_receipt_through_local_standins(capsys, settings):
    before = (os.environ.get("AWS_ENDPOINT_URL_S3"), settings.AWS_S3_BUCKET)
    call_command("document_demo", "--with-failures")
    out = capsys.readouterr().out
    assert "S3 stand-in (moto):  http://127.0.0.1:" in out
    assert (
        "veryfi-process attempt 1 failed: Veryfi answered HTTP 500: Internal server error (gave up after 3 tries)"
        in out
    )
    assert "Orbit Coffee Roasters" in out
    assert VeryfiDocument.objects.get().vendor_name == "Orbit Coffee Roasters"
    # Nothing of the demo's configuration is left behind in this process.
    assert (os.environ.get("AWS_ENDPOINT_URL_S3"), settings.AWS_S3_BUCKET) == before
