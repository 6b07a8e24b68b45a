from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F

from orbit.core.links import http_url


class VeryfiDocumentQuerySet(models.QuerySet["VeryfiDocument"]):
    def for_run(self, run_id: uuid.UUID | str) -> VeryfiDocumentQuerySet:
        return self.filter(run_id=run_id)


class VeryfiDocument(models.Model):
    """What Veryfi extracted from one document, keyed by Veryfi's own id.

    Written as an upsert on `veryfi_id`, so a storage step that runs again (a retry, a
    resumed run) updates the row it wrote instead of adding a second one.
    """

    veryfi_id = models.BigIntegerField(unique=True, help_text="The document's id at Veryfi.")
    external_id = models.CharField(
        max_length=255, blank=True, help_text="Sent to Veryfi: the step's idempotency key."
    )
    run = models.ForeignKey(
        "runs.Run",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="veryfi_documents",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="veryfi_documents",
    )
    status = models.CharField(
        max_length=32, blank=True, help_text="Veryfi's status: processed, reviewed, archived."
    )
    document_type = models.CharField(max_length=64, blank=True)
    vendor_name = models.CharField(max_length=255, blank=True)
    date = models.DateField(null=True, blank=True, help_text="The document's date, as printed.")
    currency_code = models.CharField(max_length=8, blank=True)
    subtotal = models.DecimalField(max_digits=16, decimal_places=3, null=True, blank=True)
    tax = models.DecimalField(max_digits=16, decimal_places=3, null=True, blank=True)
    total = models.DecimalField(max_digits=16, decimal_places=3, null=True, blank=True)
    line_items = models.JSONField(default=list, blank=True)
    ocr_text = models.TextField(blank=True)
    response = models.JSONField(default=dict, blank=True, help_text="Veryfi's full answer.")
    s3_bucket = models.CharField(max_length=255, blank=True)
    s3_key = models.CharField(max_length=1024, blank=True)
    s3_url = models.URLField(max_length=2048, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = VeryfiDocumentQuerySet.as_manager()

    class Meta:
        ordering = [F("created_at").desc(), F("id").desc()]
        indexes = [
            models.Index(F("created_at").desc(), F("id").desc(), name="veryfidoc_created_idx"),
            models.Index(fields=["vendor_name"], name="veryfidoc_vendor_idx"),
        ]

    def __str__(self) -> str:
        return f"Veryfi #{self.veryfi_id} {self.vendor_name or '(no vendor)'}"

    @property
    def image_url(self) -> str:
        """Veryfi's link to the document image, when it is an http(s) URL."""
        return http_url((self.response or {}).get("img_url"))
