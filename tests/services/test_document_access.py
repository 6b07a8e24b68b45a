"""Which files the document pipeline may send to S3 and Veryfi: only those in
ORBIT_DOCUMENTS_ROOT, put there by an upload (API, dashboard) or by the CLI on the host.

Each attack is tried as an operator would: an API token with the operator role queues the
run, the run executes, and the S3 and Veryfi stand-ins are checked for what reached them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from orbit.core.tokens import create_token
from pipelines.models import Pipeline
from runs.enqueueing import get_pipeline
from runs.foreground import resume
from runs.models import Run
from tests.api.conftest import OPERATOR, make_user
from tests.services.conftest import BUCKET, RECEIPT, s3_client

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_ENV = "SECRET_KEY=not-for-s3\nDATABASE_URL=postgres://orbit:hunter2@db/orbit\n"


@pytest.fixture
def operator() -> tuple[User, Client]:
    # The operator role's permissions, granted directly: the role's group is created by a
    # migration, which a transactional test's flush removes.
    return make_user("operator-user", OPERATOR, is_staff=True), Client()


@pytest.fixture
def operator_api(operator) -> Client:
    _, key = create_token(operator[0], "tests")
    return Client(headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def pipeline() -> Pipeline:
    return get_pipeline("document-processing")


@pytest.fixture
def dotenv(documents_root: Path) -> Path:
    """The project's .env beside the documents folder: what an attacker wants uploaded."""
    path = documents_root.parent / ".env"
    path.write_text(SECRET_ENV)
    return path


def bucket_keys() -> list[str]:
    return [o["Key"] for o in s3_client().list_objects_v2(Bucket=BUCKET).get("Contents", [])]


@pytest.mark.parametrize(
    "make",
    [
        # a system file by its absolute path
        lambda root, dotenv: "/etc/passwd",
        # the project's secrets by their absolute path
        lambda root, dotenv: str(dotenv),
        # ../ out of the documents folder
        lambda root, dotenv: "../.env",
        # ../ after a folder inside it
        lambda root, dotenv: "uploads/../../.env",
        # a symlink inside the folder pointing out of it
        lambda root, dotenv: _link(root / "receipt.pdf", Path("/etc/passwd")),
        # a symlinked folder inside the folder pointing out of it
        lambda root, dotenv: _link(root / "inbox", dotenv.parent) + "/.env",
    ],
)
def test_an_operator_cannot_send_a_server_file_to_s3_or_veryfi(
    documents_env, documents_root, dotenv, veryfi_standin, operator_api, pipeline, make
):
    file_path = make(documents_root, dotenv)
    response = operator_api.post(
        f"/api/pipelines/{pipeline.id}/runs",
        {"metadata": {"filePath": file_path}},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content

    result = resume(response.json()["id"])

    assert not result.success
    assert result.error == (
        f"Step 's3-upload' failed and cannot be retried: Not an allowed document: {file_path!r}"
    )
    assert bucket_keys() == []
    assert veryfi_standin.requests == []


def test_default_metadata_cannot_name_a_server_file_either(
    documents_env, documents_root, veryfi_standin, operator_api, pipeline
):
    pipeline.default_metadata = {"filePath": "/etc/shadow"}
    pipeline.save(update_fields=["default_metadata"])
    response = operator_api.post(
        f"/api/pipelines/{pipeline.id}/runs", {}, content_type="application/json"
    )
    result = resume(response.json()["id"])
    assert result.error.endswith("Not an allowed document: '/etc/shadow'")
    assert bucket_keys() == []
    assert veryfi_standin.requests == []


def test_refusals_tell_nothing_about_what_exists(
    documents_env, documents_root, veryfi_standin, operator_api, pipeline, tmp_path
):
    """A missing file, a directory and an unreadable regular file outside the folder all
    read the same: no existence, type or size oracle."""
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 10_000)
    errors = set()
    for file_path in ("/nonexistent/x.pdf", "/etc", str(big), "/etc/passwd"):
        response = operator_api.post(
            f"/api/pipelines/{pipeline.id}/runs",
            {"metadata": {"filePath": file_path}},
            content_type="application/json",
        )
        error = resume(response.json()["id"]).error
        errors.add(error.replace(repr(file_path), "PATH"))
    assert errors == {
        "Step 's3-upload' failed and cannot be retried: Not an allowed document: PATH"
    }


def test_a_document_uploaded_through_the_api_is_processed(
    documents_env, documents_root, veryfi_standin, operator_api, pipeline
):
    with RECEIPT.open("rb") as upload:
        response = operator_api.post(
            f"/api/pipelines/{pipeline.id}/runs/upload",
            {"file": upload, "metadata": '{"userId": null}'},
        )
    assert response.status_code == 201, response.content
    file_path = response.json()["metadata"]["filePath"]
    assert file_path.startswith("uploads/") and file_path.endswith("/receipt.pdf")
    assert (documents_root / file_path).read_bytes() == RECEIPT.read_bytes()

    result = resume(response.json()["id"])

    assert result.success, result.error
    [key] = bucket_keys()
    body = s3_client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert body == RECEIPT.read_bytes()
    assert len(veryfi_standin.process_requests()) == 1


def test_a_document_uploaded_on_the_dashboard_is_processed(
    documents_env, documents_root, veryfi_standin, operator, pipeline
):
    user, client = operator
    client.force_login(user)
    with RECEIPT.open("rb") as upload:
        response = client.post(
            f"/dashboard/pipelines/{pipeline.id}/run/", {"metadata": "", "document": upload}
        )
    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/dashboard/runs/{run.id}/"
    assert run.metadata["filePath"].startswith("uploads/")

    result = resume(run.id)

    assert result.success, result.error
    assert len(bucket_keys()) == 1


def _link(link: Path, target: Path) -> str:
    os.symlink(target, link)
    return link.name
