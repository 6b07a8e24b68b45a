"""The admin for Veryfi documents: what was extracted, from which run, and the raw answer.

Documents come from the document-processing pipeline, so they are never added or edited
by hand; an operator may delete one.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from orbit.console.admin.base import OrbitModelAdmin
from orbit.core.links import http_url
from orbit.core.redaction import redact
from services.models import VeryfiDocument


@admin.register(VeryfiDocument)
class VeryfiDocumentAdmin(OrbitModelAdmin):
    list_display = (
        "veryfi_id",
        "vendor_name",
        "total_amount",
        "date",
        "status",
        "run_link",
        "image_link",
        "created_at",
    )
    list_display_links = ("veryfi_id",)
    list_filter = ("status", "document_type", "currency_code", "created_at")
    list_select_related = ("run",)
    search_fields = ("vendor_name", "=veryfi_id", "external_id", "s3_key")
    search_help_text = "Vendor name, an exact Veryfi id, the external id or the S3 key."
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "veryfi_id",
                    "external_id",
                    "status",
                    "document_type",
                    "run_link",
                    "user",
                    "image_link",
                )
            },
        ),
        (
            "Extracted",
            {
                "fields": (
                    "vendor_name",
                    "date",
                    "currency_code",
                    "subtotal",
                    "tax",
                    "total",
                    "line_items_json",
                    "ocr_text",
                )
            },
        ),
        ("Storage", {"fields": ("s3_bucket", "s3_key", "s3_url", "created_at", "updated_at")}),
        ("Veryfi's answer", {"fields": ("response_json",)}),
    )

    class Media:
        css = {"all": ["orbit/dashboard.css"]}

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [str(name) for _, options in self.fieldsets for name in options["fields"]]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request)

    @admin.display(description="Total", ordering="total")
    def total_amount(self, document: VeryfiDocument) -> str:
        if document.total is None:
            return "—"
        return f"{document.total.normalize():f} {document.currency_code}".strip()

    @admin.display(description="Run")
    def run_link(self, document: VeryfiDocument) -> SafeString | str:
        if document.run_id is None:
            return "—"
        try:
            url = reverse("admin:runs_run_change", args=[document.run_id])
        except NoReverseMatch:  # the runs admin is not installed
            return str(document.run_id)
        return format_html('<a href="{}">{}</a>', url, str(document.run_id)[:8])

    @admin.display(description="Image")
    def image_link(self, document: VeryfiDocument) -> SafeString | str:
        url = http_url(document.image_url)
        if not url:
            return "—"
        return format_html('<a href="{}" target="_blank" rel="noopener noreferrer">image</a>', url)

    @admin.display(description="Line items")
    def line_items_json(self, document: VeryfiDocument) -> SafeString:
        return _pretty(document.line_items)

    @admin.display(description="Raw JSON")
    def response_json(self, document: VeryfiDocument) -> SafeString:
        return _pretty(document.response)


def _pretty(value: Any) -> SafeString:
    # A class, not a style attribute: the Content-Security-Policy allows no inline style.
    return format_html(
        '<pre class="code">{}</pre>',
        json.dumps(redact(value), indent=2, sort_keys=True, ensure_ascii=False),
    )
