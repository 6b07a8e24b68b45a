"""The document-processing steps. Each parses its context, calls S3, Veryfi or storage,
and shapes a JSON result; the work itself lives in s3.py, veryfi.py and storage.py."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from orbit.core.exceptions import PermanentFailure
from pipelines import StepContext
from services import conf, s3
from services.documents import local_document
from services.storage import document_fields, store_document
from services.veryfi import VeryfiClient, VeryfiConfig

UPLOAD_STEP = "s3-upload"
VERYFI_STEP = "veryfi-process"
STORE_STEP = "store-results"
TAGS = ("orbit",)


def s3_upload(ctx: StepContext) -> dict[str, Any]:
    """Upload `metadata.filePath` (in ORBIT_DOCUMENTS_ROOT) to AWS_S3_BUCKET under a key
    fixed for this run."""
    with local_document(ctx.metadata.get("filePath"), max_bytes=conf.max_upload_bytes()) as doc:
        bucket = conf.s3_bucket()
        key = s3.object_key(ctx.idempotency_key, doc.name)
        ctx.log.info(
            "Uploading %s (%d bytes, %s) to s3://%s/%s",
            doc.path,
            doc.size,
            doc.content_type,
            bucket,
            key,
            extra={"bucket": bucket, "key": key, "size": doc.size},
        )
        s3.upload(doc.file, bucket=bucket, key=key, content_type=doc.content_type)
    return {
        "bucket": bucket,
        "key": key,
        "url": s3.object_url(bucket=bucket, key=key),
        "contentType": doc.content_type,
        "size": doc.size,
    }


def veryfi_process(ctx: StepContext) -> dict[str, Any]:
    """Have Veryfi extract the uploaded document; `external_id` is this step's key."""
    upload = previous_result(ctx, UPLOAD_STEP)
    bucket, key = str(upload["bucket"]), str(upload["key"])
    config = VeryfiConfig.from_settings()
    transfer = conf.veryfi_file_transfer()
    with VeryfiClient(config, log=ctx.log, deadline=_monotonic(ctx.deadline)) as veryfi:
        if transfer == "url":
            ctx.log.info(
                "Sending s3://%s/%s to Veryfi as a presigned URL valid for %d s",
                bucket,
                key,
                s3.PRESIGNED_URL_SECONDS,
                extra={"transfer": "url"},
            )
            url = s3.presigned_url(bucket=bucket, key=key)
            document = veryfi.process_document(
                file_url=url, external_id=ctx.idempotency_key, tags=TAGS
            )
        else:
            data = s3.download(bucket=bucket, key=key)
            ctx.log.info(
                "Sending s3://%s/%s to Veryfi in the request (%d bytes)",
                bucket,
                key,
                len(data),
                extra={"transfer": "data"},
            )
            document = veryfi.process_document(
                file_name=PurePosixPath(key).name,
                file_data=base64.b64encode(data).decode(),
                external_id=ctx.idempotency_key,
                tags=TAGS,
            )
    fields = document_fields(document)
    ctx.log.info(
        "Veryfi extracted document %s: %s, total %s %s",
        document["id"],
        fields["vendor_name"] or "(no vendor)",
        document.get("total"),
        fields["currency_code"],
        extra={"veryfi_id": document["id"]},
    )
    return {
        "veryfiId": document["id"],
        "response": document,
        "s3Bucket": bucket,
        "s3Key": key,
        "s3Url": upload.get("url", ""),
    }


def store_results(ctx: StepContext) -> dict[str, Any]:
    """Upsert the VeryfiDocument for Veryfi's answer: running it again never duplicates."""
    processed = previous_result(ctx, VERYFI_STEP)
    response = processed.get("response")
    if not isinstance(response, dict) or "id" not in response:
        raise PermanentFailure(f"Step {VERYFI_STEP!r} returned no Veryfi document to store")
    document, created = store_document(
        response,
        run_id=ctx.run_id,
        s3={
            "bucket": processed.get("s3Bucket"),
            "key": processed.get("s3Key"),
            "url": processed.get("s3Url"),
        },
        user_id=ctx.metadata.get("userId"),
        log=ctx.log,
    )
    ctx.log.info(
        "%s document %s for Veryfi id %s",
        "Stored" if created else "Updated",
        document.pk,
        document.veryfi_id,
        extra={"document_id": document.pk, "document_created": created},
    )
    return {
        "documentId": document.pk,
        "veryfiId": document.veryfi_id,
        "status": document.status,
        "created": created,
    }


def summarize(ctx: StepContext) -> dict[str, Any]:
    """What happened: the file, its size, the vendor and total, and each step's duration."""
    from runs.models import Step

    upload = ctx.prev_results.get(UPLOAD_STEP) or {}
    processed = ctx.prev_results.get(VERYFI_STEP) or {}
    stored = ctx.prev_results.get(STORE_STEP) or {}
    response = processed.get("response") or {}
    fields = document_fields(response)
    # A list, not an object: PostgreSQL's jsonb would reorder the keys.
    durations = [
        {"step": name, "seconds": round(duration, 3)}
        for name, duration in Step.objects.filter(run_id=ctx.run_id)
        .exclude(name=ctx.step)
        .order_by("position")
        .values_list("name", "duration")
        if duration is not None
    ]
    summary = {
        "file": PurePosixPath(str(ctx.metadata.get("filePath", ""))).name,
        "size": upload.get("size"),
        "s3Url": upload.get("url"),
        "veryfiId": processed.get("veryfiId"),
        "documentId": stored.get("documentId"),
        "vendor": fields["vendor_name"] or None,
        "total": response.get("total"),
        "currency": fields["currency_code"] or None,
        "date": fields["date"].isoformat() if fields["date"] else None,
        "durations": durations,
    }
    ctx.log.info(
        "%s (%s bytes): %s, total %s %s",
        summary["file"],
        summary["size"],
        summary["vendor"] or "no vendor",
        summary["total"],
        summary["currency"] or "",
    )
    return summary


def previous_result(ctx: StepContext, step: str) -> dict[str, Any]:
    result = ctx.prev_results.get(step)
    if not isinstance(result, dict):
        raise PermanentFailure(
            f"Step {ctx.step!r} needs the result of step {step!r}, which has not succeeded "
            "in this run"
        )
    return result


def _monotonic(deadline: datetime | None) -> float | None:
    """The step's deadline on this process's monotonic clock (a second early, to report)."""
    if deadline is None:
        return None
    return time.monotonic() + (deadline - datetime.now(UTC)).total_seconds() - 1.0
