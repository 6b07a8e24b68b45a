"""POST /api/pipelines/{id}/runs/upload: a file sent with the request, stored in
ORBIT_DOCUMENTS_ROOT, and a run queued with its path, so no server path is ever needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from orbit.web.middleware import UPLOAD_OVERHEAD
from runs.models import Run
from tests.api.conftest import Api, pipeline_id

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n" + b"0" * 400


def upload(api: Api, pipeline: str, content: bytes = PDF, **fields: object):
    path = f"/api/pipelines/{pipeline_id(pipeline)}/runs/upload"
    data = {"file": SimpleUploadedFile("my receipt.pdf", content, "application/pdf"), **fields}
    return api.client.post(path, data, headers=api._headers(None))


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_the_file_is_stored_and_the_run_gets_its_path(operator_api, documents_root):
    response = upload(operator_api, "document-processing", metadata='{"userId": null}')
    assert response.status_code == 201, response.content
    body = response.json()
    path = body["metadata"]["filePath"]
    assert path.startswith("uploads/") and path.endswith("/my_receipt.pdf")
    assert body["metadata"]["userId"] is None
    assert (documents_root / path).read_bytes() == PDF
    assert Run.objects.get().metadata["filePath"] == path


def test_a_path_in_the_metadata_is_replaced_by_the_upload(operator_api, documents_root):
    response = upload(operator_api, "document-processing", metadata='{"filePath": "/etc/passwd"}')
    assert response.json()["metadata"]["filePath"].startswith("uploads/")


def test_a_pipeline_that_takes_no_file_refuses_it_and_stores_nothing(operator_api, documents_root):
    response = upload(operator_api, "t-single")
    assert response.status_code == 422
    assert response.json()["detail"] == "Pipeline 't-single' takes no file upload"
    assert stored_files(documents_root) == []
    assert not Run.objects.exists()


def test_a_file_over_the_limit_is_refused_and_nothing_is_kept(
    operator_api, documents_root, settings
):
    settings.ORBIT_MAX_UPLOAD_BYTES = 100
    response = upload(operator_api, "document-processing")
    assert response.status_code == 413
    assert response.json() == {
        "detail": "The file is larger than 100 bytes (ORBIT_MAX_UPLOAD_BYTES)"
    }
    assert stored_files(documents_root) == []


def test_a_file_larger_than_a_plain_request_body_may_be_is_accepted(
    operator_api, documents_root, settings
):
    """DATA_UPLOAD_MAX_MEMORY_SIZE bounds JSON bodies; uploads are bounded by
    ORBIT_MAX_UPLOAD_BYTES instead, checked before the body is read."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 300
    assert upload(operator_api, "document-processing").status_code == 201
    big_json = operator_api.post(
        f"/api/pipelines/{pipeline_id('t-single')}/runs", {"metadata": {"x": "y" * 400}}
    )
    assert big_json.status_code == 413


def test_a_body_over_the_upload_limit_is_refused_before_it_is_read(
    operator_api, documents_root, settings
):
    settings.ORBIT_MAX_UPLOAD_BYTES = 100
    settings.ORBIT_MAX_METADATA_BYTES = 100
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = upload(operator_api, "document-processing", b"x" * (UPLOAD_OVERHEAD + 201))
    assert response.status_code == 413
    assert response.json() == {"detail": "The request body is too large"}


@pytest.mark.parametrize(
    ("metadata", "detail"),
    [
        # not JSON
        (
            "{oops",
            "Metadata is not valid JSON: Expecting property name enclosed in double quotes (line 1, column 2)",
        ),
        # JSON, but not an object
        ("[1, 2]", "Run metadata must be a JSON object, not list"),
        # nested far deeper than any limit: a clear error, not a RecursionError
        (
            "[" * 5000 + "]" * 5000,
            "Metadata is nested deeper than 32 levels (ORBIT_MAX_JSON_DEPTH)",
        ),
    ],
)
def test_bad_metadata_is_refused_and_nothing_is_stored(
    operator_api, documents_root, metadata, detail
):
    response = upload(operator_api, "document-processing", metadata=metadata)
    assert response.status_code == 422
    assert response.json()["detail"] == detail
    assert stored_files(documents_root) == []


def test_a_viewer_may_not_upload(viewer_api, documents_root):
    response = upload(viewer_api, "document-processing")
    assert response.status_code == 403
    assert stored_files(documents_root) == []


def test_an_anonymous_caller_may_not_upload(anonymous_api, documents_root):
    assert upload(anonymous_api, "document-processing").status_code == 401
    assert stored_files(documents_root) == []


def test_the_pipeline_says_which_field_takes_the_upload(operator_api):
    pipelines = {p["name"]: p for p in operator_api.get("/api/pipelines").json()}
    assert pipelines["document-processing"]["upload_field"] == "filePath"
    assert pipelines["t-single"]["upload_field"] is None
    assert json.dumps(pipelines["t-single"])  # still plain JSON


def post_multipart(api: Api, body: bytes, content_type: str):
    path = f"/api/pipelines/{pipeline_id('document-processing')}/runs/upload"
    return api.client.generic("POST", path, body, content_type, headers=api._headers(None))


def parts(count: int, *, files: bool) -> bytes:
    """A multipart/form-data body (boundary `b`) of `count` fields or files."""
    disposition = 'form-data; name="f{0}"' + ('; filename="f{0}.pdf"' if files else "")
    body = b"".join(
        f"--b\r\nContent-Disposition: {disposition.format(n)}\r\n\r\nx\r\n".encode()
        for n in range(count)
    )
    return body + b"--b--\r\n"


@pytest.mark.parametrize(
    ("body", "content_type", "detail"),
    [
        # no boundary: the parser cannot find the parts (MultiPartParserError)
        (
            PDF,
            "multipart/form-data",
            "The multipart body cannot be read: Invalid boundary in multipart: None",
        ),
        # more files than DATA_UPLOAD_MAX_NUMBER_FILES (100)
        (
            parts(105, files=True),
            "multipart/form-data; boundary=b",
            "More than 100 files (DATA_UPLOAD_MAX_NUMBER_FILES)",
        ),
        # more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS (1000)
        (
            parts(1100, files=False),
            "multipart/form-data; boundary=b",
            "More than 1000 query or form fields (DATA_UPLOAD_MAX_NUMBER_FIELDS)",
        ),
    ],
)
def test_a_body_the_form_parser_refuses_is_a_400_and_nothing_is_stored(
    operator_api, documents_root, body, content_type, detail
):
    response = post_multipart(operator_api, body, content_type)
    assert response.status_code == 400, response.content
    assert response.json() == {"detail": detail}
    assert stored_files(documents_root) == []
    assert not Run.objects.exists()
