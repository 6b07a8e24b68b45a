"""The document-processing pipeline end to end, in the foreground (ForegroundRunner: each
step in a forked child process), against moto and the Veryfi stand-in over real HTTP."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from runs.foreground import ForegroundRunner, resume
from runs.models import Run, RunStatus, Step, StepAttempt, StepLog
from services.models import VeryfiDocument
from tests.services.conftest import BUCKET, SECRETS, s3_client
from tests.veryfi_standin import Fail, Malformed, Slow

pytestmark = pytest.mark.django_db(transaction=True)

STEPS = ["s3-upload", "veryfi-process", "store-results", "summary"]


def execute(receipt) -> object:
    return ForegroundRunner("document-processing").execute(metadata={"filePath": str(receipt)})


def outcomes(run_id, step: str) -> list[str]:
    return list(
        StepAttempt.objects.filter(run_id=run_id, step__name=step)
        .order_by("number")
        .values_list("outcome", flat=True)
    )


def bucket_keys() -> list[str]:
    return [o["Key"] for o in s3_client().list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_happy_path_uploads_extracts_stores_and_summarises(documents_env, receipt, veryfi_standin):
    result = execute(receipt)
    assert result.success, result.error
    assert list(result.results) == STEPS
    document = VeryfiDocument.objects.get()
    assert document.run_id == result.run_id
    assert (document.veryfi_id, document.vendor_name, str(document.total)) == (
        100_000_001,
        "Orbit Coffee Roasters",
        "12.500",
    )
    assert document.external_id == f"{result.run_id}:veryfi-process"
    key = f"documents/{result.run_id}/s3-upload/receipt.pdf"
    assert bucket_keys() == [key]
    assert document.s3_key == key
    summary = result.results["summary"]
    assert {
        k: summary[k] for k in ("file", "size", "vendor", "total", "currency", "documentId")
    } == {
        "file": "receipt.pdf",
        "size": 1161,
        "vendor": "Orbit Coffee Roasters",
        "total": 12.5,
        "currency": "USD",
        "documentId": document.pk,
    }
    assert [d["step"] for d in summary["durations"]] == [
        "s3-upload",
        "veryfi-process",
        "store-results",
    ]
    assert all(d["seconds"] > 0 for d in summary["durations"])
    assert len(veryfi_standin.process_requests()) == 1


def test_a_missing_bucket_fails_the_run_at_once(documents_env, receipt, veryfi_standin, settings):
    settings.AWS_S3_BUCKET = "no-such-bucket"
    result = execute(receipt)
    assert not result.success
    assert result.error == (
        "Step 's3-upload' failed and cannot be retried: S3 bucket 'no-such-bucket' does not exist (AWS_S3_BUCKET)"
    )
    assert outcomes(result.run_id, "s3-upload") == ["failed"]
    assert veryfi_standin.requests == []


@pytest.mark.parametrize("problem", ["missing", "too large"])
def test_a_missing_or_oversized_file_fails_at_once_without_uploading(
    documents_env, receipt, veryfi_standin, settings, problem
):
    if problem == "missing":
        receipt.unlink()
        expected = f"Not an allowed document: {str(receipt)!r}"
    else:
        settings.ORBIT_MAX_UPLOAD_BYTES = 1024
        expected = "File is too large: receipt.pdf is 1161 bytes; the limit is 1024 bytes (ORBIT_MAX_UPLOAD_BYTES)"
    result = execute(receipt)
    assert result.error == f"Step 's3-upload' failed and cannot be retried: {expected}"
    assert outcomes(result.run_id, "s3-upload") == ["failed"]
    assert bucket_keys() == []
    assert veryfi_standin.requests == []


def test_429_with_retry_after_is_retried_inside_one_attempt(documents_env, receipt, veryfi_standin):
    veryfi_standin.script(Fail(429, retry_after=1))
    result = execute(receipt)
    assert result.success, result.error
    assert outcomes(result.run_id, "veryfi-process") == ["succeeded"]
    assert [r.status for r in veryfi_standin.process_requests()] == [429, 201]
    logs = StepLog.objects.filter(run_id=result.run_id, step__name="veryfi-process")
    assert [line.message for line in logs if line.level == "WARNING"] == [
        "Veryfi answered HTTP 429: Too many requests; retrying in 1.0 s (try 1 of 3)"
    ]


def test_three_500s_fail_the_attempt_and_the_step_is_retried_with_backoff(
    documents_env, receipt, veryfi_standin
):
    veryfi_standin.script(Fail(500), Fail(500), Fail(500))
    result = execute(receipt)
    assert result.success, result.error
    first, second = StepAttempt.objects.filter(
        run_id=result.run_id, step__name="veryfi-process"
    ).order_by("number")
    assert (first.outcome, second.outcome) == ("failed", "succeeded")
    assert first.error == "Veryfi answered HTTP 500: Internal server error (gave up after 3 tries)"
    assert first.error_type == "services.exceptions.VeryfiUnavailable"
    assert 0.1 <= first.backoff_delay <= 1.0  # the step's backoff: base 1 s, full jitter
    assert [r.status for r in veryfi_standin.process_requests()] == [500, 500, 500, 201]
    assert VeryfiDocument.objects.count() == 1


def test_401_fails_the_step_at_once_with_veryfis_message(documents_env, receipt, veryfi_standin):
    veryfi_standin.script(Fail(401, "Not Authorized"))
    result = execute(receipt)
    assert not result.success
    assert result.error == (
        "Step 'veryfi-process' failed and cannot be retried: Veryfi refused the request (HTTP 401): Not Authorized"
    )
    step = Step.objects.get(run_id=result.run_id, name="veryfi-process")
    assert (step.status, step.attempts, step.error) == (
        "failed",
        1,
        "Veryfi refused the request (HTTP 401): Not Authorized",
    )
    assert len(veryfi_standin.process_requests()) == 1
    assert not VeryfiDocument.objects.exists()


def test_a_veryfi_timeout_fails_the_attempt_and_the_next_attempt_succeeds(
    documents_env, receipt, veryfi_standin, settings
):
    settings.VERYFI_TIMEOUT = 300
    veryfi_standin.script(Slow(1), Slow(1), Slow(1))
    result = execute(receipt)
    assert result.success, result.error
    first = (
        StepAttempt.objects.filter(run_id=result.run_id, step__name="veryfi-process")
        .order_by("number")
        .first()
    )
    assert (
        first.error
        == "Veryfi did not answer within 0.3 s (VERYFI_TIMEOUT=300 ms) (gave up after 3 tries)"
    )
    assert outcomes(result.run_id, "veryfi-process") == ["failed", "succeeded"]
    assert VeryfiDocument.objects.count() == 1


def test_a_malformed_answer_fails_the_attempt_and_is_retried(
    documents_env, receipt, veryfi_standin
):
    veryfi_standin.script(Malformed())
    result = execute(receipt)
    assert result.success, result.error
    first = (
        StepAttempt.objects.filter(run_id=result.run_id, step__name="veryfi-process")
        .order_by("number")
        .first()
    )
    assert (
        first.error
        == 'Veryfi answered HTTP 201 with a body that is not JSON: {"id": 1, "vendor": {"name": "trunc'
    )
    assert first.error_type == "services.exceptions.VeryfiBadResponse"
    assert outcomes(result.run_id, "veryfi-process") == ["failed", "succeeded"]


def test_missing_configuration_fails_at_once_naming_the_variable(
    documents_env, receipt, veryfi_standin, settings
):
    settings.VERYFI_CLIENT_ID = ""
    result = execute(receipt)
    assert result.error == (
        "Step 'veryfi-process' failed and cannot be retried: VERYFI_CLIENT_ID is not set: "
        "the Veryfi client id (Settings > Keys)"
    )
    assert veryfi_standin.requests == []


def test_store_results_executed_again_after_a_crash_keeps_one_document(documents_env, receipt):
    """The worker died after the document was written but before store-results was recorded."""
    result = execute(receipt)
    document = VeryfiDocument.objects.get()
    Step.objects.filter(run_id=result.run_id, name="store-results").update(
        status="running", result=None
    )
    Step.objects.filter(run_id=result.run_id, name="summary").update(status="pending", result=None)
    Run.objects.filter(id=result.run_id).update(
        status=RunStatus.RUNNING,
        current_step="store-results",
        lease_expires_at=timezone.now() - timedelta(seconds=5),
        finished_at=None,
    )
    resumed = resume(result.run_id)
    assert resumed.success, resumed.error
    assert resumed.results["store-results"] == {
        "documentId": document.pk,
        "veryfiId": document.veryfi_id,
        "status": "processed",
        "created": False,
    }
    assert VeryfiDocument.objects.count() == 1
    assert outcomes(result.run_id, "store-results") == ["succeeded", "interrupted", "succeeded"]


def test_secrets_never_reach_logs_results_or_errors(
    documents_env, receipt, veryfi_standin, settings, caplog, capfd
):
    # Orbit's own loggers at their most verbose; libraries stay at their configured
    # levels (botocore's DEBUG output prints request signatures, as its authors intend).
    for name in ("orbit", "pipelines", "runs", "services"):
        caplog.set_level(logging.DEBUG, logger=name)
    veryfi_standin.script(Fail(429, retry_after=0.1), Fail(500), Fail(500), Fail(500))
    ok = execute(receipt)
    veryfi_standin.script(Fail(401, "Not Authorized"))
    refused = execute(receipt)
    assert ok.success and not refused.success
    sent = veryfi_standin.process_requests()
    signatures = [r.headers["X-Veryfi-Request-Signature"] for r in sent]
    presigned = [r.json["file_url"].split("?", 1)[1] for r in sent]
    assert len(signatures) == 6
    stored = json.dumps(
        [
            list(Run.objects.values_list("error", "metadata")),
            list(Step.objects.values_list("result", "error", "traceback")),
            list(StepLog.objects.values_list("message", "fields")),
            list(StepAttempt.objects.values_list("error", "traceback")),
            list(VeryfiDocument.objects.values_list("response", "s3_url")),
            [ok.results, refused.results],
        ],
        default=str,
    )
    captured = capfd.readouterr()
    printed = caplog.text + captured.out + captured.err
    assert "retrying in" in stored  # the logs are there; only the secrets are not
    for secret in (*SECRETS, *signatures, *presigned):
        assert secret not in stored
        assert secret not in printed
