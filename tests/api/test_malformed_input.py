"""Input a database cannot store or a parser cannot read: each a 4xx with a clear message,
never a 500 (on PostgreSQL a NUL byte in text or JSON is a DataError; UTF-8 cannot encode
a lone surrogate)."""

from __future__ import annotations

import pytest

from pipelines.models import Pipeline
from runs.models import Run
from tests.api.conftest import pipeline_id

pytestmark = pytest.mark.django_db

UNSTORABLE = "cannot hold a NUL character or an unpaired surrogate"


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ('{"metadata": {"a": "x\\u0000y"}}', "a"),  # a NUL in a value
        ('{"metadata": {"a\\u0000": 1}}', "a\\x00"),  # a NUL in a key
        ('{"metadata": {"a": "\\ud800"}}', "a"),  # a lone surrogate
        ('{"metadata": {"a": ["ok", {"b": "\\udfff"}]}}', "a[1].b"),  # deep inside
    ],
)
def test_run_metadata_a_database_cannot_store_is_a_422(operator_api, raw, where):
    response = operator_api.post(f"/api/pipelines/{pipeline_id('t-single')}/runs", raw=raw)
    assert response.status_code == 422
    assert response.json()["detail"] == f"Run metadata {UNSTORABLE} (at {where})"
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    ("body", "field", "detail"),
    [
        (
            {"description": "a\x00b"},
            "description",
            f"The description {UNSTORABLE}",
        ),
        (  # pydantic refuses it first
            {"description": "\ud800"},
            "description",
            "description: Input should be a valid string, unable to parse raw data as a unicode string",
        ),
        (
            {"default_metadata": {"k": "\x00"}},
            "default_metadata",
            f"Run metadata {UNSTORABLE} (at k)",
        ),
    ],
)
def test_pipeline_text_a_database_cannot_store_is_a_422(admin_api, body, field, detail):
    created = admin_api.post("/api/pipelines", {"name": "p-new", "definition": "t-single", **body})
    assert created.status_code == 422, created.content
    assert created.json()["detail"] == detail
    assert created.json()["errors"][0]["field"] == field
    assert not Pipeline.objects.filter(name="p-new").exists()
    changed = admin_api.patch(f"/api/pipelines/{pipeline_id('t-single')}", body)
    assert changed.status_code == 422
    assert changed.json()["detail"] == detail


@pytest.mark.parametrize(
    "path",
    [
        "/api/runs?pipeline=%00",
        "/api/runs?pipeline=a%0Ab",  # a newline: no pipeline is named so
        "/api/worker/recent-runs?status=%00",
        "/api/runs?cursor=%00",
    ],
)
def test_query_parameters_a_database_cannot_take_are_a_4xx(viewer_api, path):
    response = viewer_api.client.get(path, headers=viewer_api._headers(None))
    assert response.status_code in (400, 422), response.content
    assert response.json()["detail"]


def test_an_idempotency_key_with_control_characters_is_a_422(operator_api):
    response = operator_api.post(
        f"/api/pipelines/{pipeline_id('t-single')}/runs",
        {},
        headers={"Idempotency-Key": "order\x0042"},
    )
    assert response.status_code == 422
    assert not Run.objects.exists()


def test_more_query_parameters_than_django_reads_is_a_400(viewer_api, caplog):
    """DATA_UPLOAD_MAX_NUMBER_FIELDS (1000) bounds the query string too (TooManyFieldsSent):
    the caller's error, so no traceback is logged."""
    query = "&".join(f"x{n}=1" for n in range(1001))
    response = viewer_api.client.get(f"/api/runs?{query}", headers=viewer_api._headers(None))
    assert response.status_code == 400
    assert not [r for r in caplog.records if r.exc_info]
    assert response.json() == {
        "detail": "More than 1000 query or form fields (DATA_UPLOAD_MAX_NUMBER_FIELDS)"
    }
