"""The document pipeline's settings, read at call time so tests and `.env` changes apply.

A setting that is needed but empty raises `NotConfigured` naming the variable, so the
step fails at once with a message that says what to set.
"""

from __future__ import annotations

from django.conf import settings

from services.exceptions import NotConfigured

DEFAULT_VERYFI_API_BASE_URL = "https://api.veryfi.com/api/v8/partner"
DEFAULT_VERYFI_TIMEOUT_MS = 120_000
DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
FILE_TRANSFERS = ("url", "data")


def required(name: str, why: str) -> str:
    """The non-empty string setting `name`, or NotConfigured saying what it is for."""
    value = str(getattr(settings, name, "") or "").strip()
    if not value:
        raise NotConfigured(f"{name} is not set: {why}")
    return value


def optional(name: str, default: str = "") -> str:
    return str(getattr(settings, name, "") or default).strip()


def positive_int(name: str, default: int) -> int:
    value = getattr(settings, name, default)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise NotConfigured(f"{name} must be a whole number, not {value!r}") from None
    if number <= 0:
        raise NotConfigured(f"{name} must be greater than 0, not {number}")
    return number


def s3_bucket() -> str:
    return required("AWS_S3_BUCKET", "the S3 bucket documents are uploaded to")


def aws_region() -> str | None:
    """None lets boto3 find the region itself (AWS_DEFAULT_REGION, ~/.aws/config)."""
    return optional("AWS_REGION") or None


def max_upload_bytes() -> int:
    return positive_int("ORBIT_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES)


def veryfi_file_transfer() -> str:
    value = optional("VERYFI_FILE_TRANSFER", "url").lower()
    if value not in FILE_TRANSFERS:
        raise NotConfigured(
            f"VERYFI_FILE_TRANSFER is {value!r}; use 'url' (Veryfi fetches a presigned S3 "
            "URL) or 'data' (the file is sent in the request)"
        )
    return value
