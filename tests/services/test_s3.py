"""The s3-upload step and services/s3.py, against moto's S3 server over real HTTP."""

from __future__ import annotations

import pytest
import requests

from orbit.core.exceptions import NotAllowedDocument, PermanentFailure
from services import s3
from services.exceptions import InvalidDocument, NotConfigured, S3Refused
from services.steps import s3_upload
from tests.services.conftest import BUCKET, s3_client


def objects_in_bucket() -> list[str]:
    return [o["Key"] for o in s3_client().list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_upload_stores_the_file_with_its_content_type(s3_env, make_ctx, receipt):
    ctx = make_ctx("s3-upload", metadata={"filePath": str(receipt)})
    result = s3_upload(ctx)
    key = f"documents/{ctx.run_id}/s3-upload/receipt.pdf"
    assert result == {
        "bucket": BUCKET,
        "key": key,
        "url": f"{s3_env['AWS_ENDPOINT_URL_S3']}/{BUCKET}/{key}",
        "contentType": "application/pdf",
        "size": 1161,
    }
    stored = s3_client().get_object(Bucket=BUCKET, Key=key)
    assert stored["ContentType"] == "application/pdf"
    assert stored["Body"].read() == receipt.read_bytes()


def test_a_repeated_attempt_overwrites_its_own_object(s3_env, make_ctx, receipt):
    ctx = make_ctx("s3-upload", metadata={"filePath": str(receipt)})
    first = s3_upload(ctx)
    receipt.write_bytes(receipt.read_bytes() + b"\n% second attempt\n")
    second = s3_upload(ctx)
    assert second["key"] == first["key"]
    assert objects_in_bucket() == [first["key"]]
    assert second["size"] == 1161 + 18


def test_an_unknown_extension_is_uploaded_as_octet_stream(
    s3_env, make_ctx, documents_root, receipt
):
    odd = documents_root / "scan.zz9"
    odd.write_bytes(receipt.read_bytes())
    result = s3_upload(make_ctx("s3-upload", metadata={"filePath": str(odd)}))
    assert result["contentType"] == "application/octet-stream"


def test_a_missing_bucket_fails_at_once_naming_it(s3_env, make_ctx, receipt, settings):
    settings.AWS_S3_BUCKET = "no-such-bucket"
    with pytest.raises(S3Refused) as caught:
        s3_upload(make_ctx("s3-upload", metadata={"filePath": str(receipt)}))
    assert isinstance(caught.value, PermanentFailure)
    assert str(caught.value) == "S3 bucket 'no-such-bucket' does not exist (AWS_S3_BUCKET)"


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        (
            {"filePath": "/nonexistent/receipt.pdf"},
            "Not an allowed document: '/nonexistent/receipt.pdf'",
        ),
        (
            {},
            "A document path is required: a file in ORBIT_DOCUMENTS_ROOT, as a string (got None)",
        ),
    ],
)
def test_a_missing_file_fails_at_once_and_uploads_nothing(
    s3_env, make_ctx, documents_root, metadata, message
):
    with pytest.raises(NotAllowedDocument) as caught:
        s3_upload(make_ctx("s3-upload", metadata=metadata))
    assert str(caught.value) == message
    assert objects_in_bucket() == []


def test_a_file_over_the_limit_fails_at_once_and_uploads_nothing(
    s3_env, make_ctx, receipt, settings
):
    settings.ORBIT_MAX_UPLOAD_BYTES = 1000
    with pytest.raises(InvalidDocument) as caught:
        s3_upload(make_ctx("s3-upload", metadata={"filePath": str(receipt)}))
    assert str(caught.value) == (
        "File is too large: receipt.pdf is 1161 bytes; the limit is 1000 bytes (ORBIT_MAX_UPLOAD_BYTES)"
    )
    assert objects_in_bucket() == []


def test_an_unset_bucket_names_the_variable(s3_env, make_ctx, receipt, settings):
    settings.AWS_S3_BUCKET = ""
    with pytest.raises(NotConfigured) as caught:
        s3_upload(make_ctx("s3-upload", metadata={"filePath": str(receipt)}))
    assert str(caught.value) == "AWS_S3_BUCKET is not set: the S3 bucket documents are uploaded to"


def test_missing_credentials_fail_at_once(s3_env, make_ctx, receipt, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    s3._client.cache_clear()  # a client keeps the credentials it was built with
    with pytest.raises(S3Refused) as caught:
        s3_upload(make_ctx("s3-upload", metadata={"filePath": str(receipt)}))
    assert str(caught.value) == (
        "No AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
        "or configure a profile or an instance role"
    )


def test_a_presigned_url_fetches_the_object_and_the_plain_url_has_no_signature(s3_env, receipt):
    with receipt.open("rb") as file:
        s3.upload(file, bucket=BUCKET, key="k/receipt.pdf", content_type="application/pdf")
    signed = s3.presigned_url(bucket=BUCKET, key="k/receipt.pdf")
    assert requests.get(signed, timeout=10).content == receipt.read_bytes()
    plain = s3.object_url(bucket=BUCKET, key="k/receipt.pdf")
    assert plain == f"{s3_env['AWS_ENDPOINT_URL_S3']}/{BUCKET}/k/receipt.pdf"
    assert requests.get(plain, timeout=10).status_code == 403  # private: needs a signature


def test_reading_a_missing_object_fails_naming_it(s3_env):
    with pytest.raises(S3Refused, match=f"^s3://{BUCKET}/missing.pdf does not exist$"):
        s3.download(bucket=BUCKET, key="missing.pdf")


def test_the_client_follows_the_endpoint_variable(s3_env, monkeypatch):
    """boto3 reads AWS_ENDPOINT_URL_S3 itself; the cached client follows a change."""
    assert s3.client().meta.endpoint_url == s3_env["AWS_ENDPOINT_URL_S3"]
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")
    assert s3.client().meta.endpoint_url == "http://127.0.0.1:1"
