"""The veryfi-process, store-results and summary steps, called directly with a
StepContext, against moto and the Veryfi stand-in over real HTTP."""

from __future__ import annotations

import base64

import pytest

from orbit.core.exceptions import PermanentFailure
from runs.models import Step
from services.exceptions import NotConfigured, VeryfiRejected
from services.models import VeryfiDocument
from services.steps import s3_upload, store_results, summarize, veryfi_process
from tests.factories import PipelineFactory, RunFactory
from tests.services.conftest import SECRETS
from tests.veryfi_standin import Fail


@pytest.fixture
def uploaded(documents_env, make_ctx, receipt):
    ctx = make_ctx("s3-upload", metadata={"filePath": str(receipt)})
    return ctx.run_id, s3_upload(ctx)


def test_veryfi_gets_a_presigned_url_and_the_external_id(
    uploaded, make_ctx, veryfi_standin, step_log
):
    run_id, upload = uploaded
    ctx = make_ctx("veryfi-process", run_id=run_id, prev_results={"s3-upload": upload})
    result = veryfi_process(ctx)
    assert result["veryfiId"] == 100_000_001
    assert (result["s3Bucket"], result["s3Key"], result["s3Url"]) == (
        upload["bucket"],
        upload["key"],
        upload["url"],
    )
    assert result["response"]["vendor"]["name"] == "Orbit Coffee Roasters"
    body = veryfi_standin.requests[0].json
    assert body["external_id"] == f"{run_id}:veryfi-process"
    assert body["file_url"].startswith(upload["url"] + "?")  # the stand-in fetched it from moto
    assert body["tags"] == ["orbit"]
    assert step_log.messages[1:] == [
        f"Sending s3://{upload['bucket']}/{upload['key']} to Veryfi as a presigned URL valid for 900 s",
        "Veryfi extracted document 100000001: Orbit Coffee Roasters, total 12.5 USD",
    ]
    # The presigned URL is a credential for the object: never in logs or results.
    assert body["file_url"] not in str(result) + " ".join(step_log.messages)


def test_file_data_mode_sends_the_bytes_from_s3(
    uploaded, make_ctx, veryfi_standin, receipt, settings
):
    settings.VERYFI_FILE_TRANSFER = "data"
    run_id, upload = uploaded
    veryfi_process(make_ctx("veryfi-process", run_id=run_id, prev_results={"s3-upload": upload}))
    body = veryfi_standin.requests[0].json
    assert body["file_name"] == "receipt.pdf"
    assert base64.b64decode(body["file_data"]) == receipt.read_bytes()
    assert "file_url" not in body


def test_an_unknown_transfer_mode_is_explained(uploaded, make_ctx, settings):
    settings.VERYFI_FILE_TRANSFER = "carrier-pigeon"
    run_id, upload = uploaded
    with pytest.raises(
        NotConfigured, match=r"^VERYFI_FILE_TRANSFER is 'carrier-pigeon'; use 'url'"
    ):
        veryfi_process(
            make_ctx("veryfi-process", run_id=run_id, prev_results={"s3-upload": upload})
        )


def test_a_401_fails_the_step_permanently_with_veryfis_message(uploaded, make_ctx, veryfi_standin):
    veryfi_standin.script(Fail(401, "Not Authorized"))
    run_id, upload = uploaded
    with pytest.raises(VeryfiRejected) as caught:
        veryfi_process(
            make_ctx("veryfi-process", run_id=run_id, prev_results={"s3-upload": upload})
        )
    assert isinstance(caught.value, PermanentFailure)
    assert str(caught.value) == "Veryfi refused the request (HTTP 401): Not Authorized"


def test_a_missing_variable_fails_before_any_request(uploaded, make_ctx, veryfi_standin, settings):
    settings.VERYFI_API_KEY = ""
    run_id, upload = uploaded
    with pytest.raises(NotConfigured, match=r"^VERYFI_API_KEY is not set: the Veryfi API key$"):
        veryfi_process(
            make_ctx("veryfi-process", run_id=run_id, prev_results={"s3-upload": upload})
        )
    assert veryfi_standin.requests == []


@pytest.mark.parametrize(
    ("step", "fn", "needs"),
    [
        ("veryfi-process", veryfi_process, "s3-upload"),
        ("store-results", store_results, "veryfi-process"),
    ],
)
def test_a_step_without_its_input_fails_permanently(make_ctx, step, fn, needs):
    with pytest.raises(PermanentFailure) as caught:
        fn(make_ctx(step))
    assert str(caught.value) == (
        f"Step {step!r} needs the result of step {needs!r}, which has not succeeded in this run"
    )


@pytest.mark.django_db
def test_storing_twice_for_one_run_keeps_one_document(uploaded, make_ctx, step_log):
    run_id, upload = uploaded
    processed = veryfi_process(
        make_ctx("veryfi-process", run_id=run_id, prev_results={"s3-upload": upload})
    )
    run = RunFactory(id=run_id, pipeline=PipelineFactory(name="document-processing"))
    ctx = make_ctx("store-results", run_id=run_id, prev_results={"veryfi-process": processed})
    first = store_results(ctx)
    again = store_results(ctx)  # a retry or a resumed run executes the step again
    assert first == {
        "documentId": first["documentId"],
        "veryfiId": 100_000_001,
        "status": "processed",
        "created": True,
    }
    assert again == {**first, "created": False}
    document = VeryfiDocument.objects.get()
    assert (str(document.run_id), document.s3_key, document.external_id) == (
        str(run.id),
        upload["key"],
        f"{run_id}:veryfi-process",
    )
    assert step_log.messages[-2:] == [
        f"Stored document {document.pk} for Veryfi id 100000001",
        f"Updated document {document.pk} for Veryfi id 100000001",
    ]
    assert not any(secret in str(first) + " ".join(step_log.messages) for secret in SECRETS)


@pytest.mark.django_db
def test_the_summary_reports_file_vendor_total_and_durations(make_ctx, receipt):
    run = RunFactory(pipeline=PipelineFactory(name="document-processing"))
    for position, (name, duration) in enumerate(
        [("s3-upload", 0.25), ("veryfi-process", 1.5), ("store-results", 0.01)]
    ):
        Step.objects.create(
            run=run, name=name, position=position, status="succeeded", duration=duration
        )
    Step.objects.create(run=run, name="summary", position=3)
    response = {
        "id": 5,
        "vendor": {"name": "Orbit Coffee Roasters"},
        "total": 12.5,
        "currency_code": "USD",
        "date": "2025-11-27 08:42:00",
    }
    ctx = make_ctx(
        "summary",
        run_id=str(run.id),
        metadata={"filePath": str(receipt)},
        prev_results={
            "s3-upload": {"size": 1161, "url": "http://s3/b/k"},
            "veryfi-process": {"veryfiId": 5, "response": response},
            "store-results": {"documentId": 9},
        },
    )
    assert summarize(ctx) == {
        "file": "receipt.pdf",
        "size": 1161,
        "s3Url": "http://s3/b/k",
        "veryfiId": 5,
        "documentId": 9,
        "vendor": "Orbit Coffee Roasters",
        "total": 12.5,
        "currency": "USD",
        "date": "2025-11-27",
        "durations": [
            {"step": "s3-upload", "seconds": 0.25},
            {"step": "veryfi-process", "seconds": 1.5},
            {"step": "store-results", "seconds": 0.01},
        ],
    }
