"""Queue options on POST /api/pipelines/{id}/runs and its bulk form."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from runs.models import Run
from tests.api.conftest import pipeline_id


def test_a_run_on_a_queue_with_a_delay_shows_when_it_is_scheduled_for(operator_api):
    path = f"/api/pipelines/{pipeline_id('t-single')}/runs"
    done = operator_api.post(path, {"queue": "documents", "delay_seconds": 120})
    assert done.status_code == 201, done.json()
    body = done.json()
    assert body["queue"] == "documents"
    assert body["delayed_until"] == body["available_at"]
    assert Run.objects.get().queue == "documents"


def test_run_after_sets_the_due_time(operator_api):
    path = f"/api/pipelines/{pipeline_id('t-single')}/runs"
    at = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    done = operator_api.post(path, {"run_after": at.isoformat()})
    assert done.status_code == 201, done.json()
    assert Run.objects.get().available_at == at


@pytest.mark.parametrize(
    "body",
    [
        {"queue": "no spaces"},
        {"delay_seconds": -1},
        {"run_after": "2020-01-01T00:00:00Z"},
        {"run_after": "2099-01-01T00:00:00Z", "delay_seconds": 5},
    ],
)
def test_bad_queue_options_are_a_422_and_queue_nothing(operator_api, body):
    path = f"/api/pipelines/{pipeline_id('t-single')}/runs"
    done = operator_api.post(path, body)
    assert done.status_code == 422, done.json()
    assert Run.objects.count() == 0


@pytest.mark.parametrize(
    "delay",
    [
        315360001,  # just past ten years
        1e13,  # beyond SQLite's integer once in microseconds
        1e308,  # beyond a C int once in days
        99999999999999999,  # an integer
    ],
)
@pytest.mark.parametrize("form", ["runs", "runs/bulk"])
def test_a_delay_past_ten_years_is_a_422_that_says_so(operator_api, delay, form):
    path = f"/api/pipelines/{pipeline_id('t-single')}/{form}"
    body = {"delay_seconds": delay, **({"runs": [{}]} if "bulk" in form else {})}
    done = operator_api.post(path, body)
    assert done.status_code == 422, done.json()
    [error] = done.json()["errors"]
    assert error["field"] == "delay_seconds"
    assert error["message"] == "Input should be less than or equal to 315360000"
    assert Run.objects.count() == 0


@pytest.mark.parametrize(
    "run_after",
    [
        "2099-01-01T00:00:00Z",  # more than ten years ahead
        "9999-12-31T23:59:59-05:00",  # in UTC, past the last moment a datetime holds
    ],
)
@pytest.mark.parametrize("form", ["runs", "runs/bulk"])
def test_a_run_after_past_ten_years_is_a_422_that_says_so(operator_api, run_after, form):
    path = f"/api/pipelines/{pipeline_id('t-single')}/{form}"
    body = {"run_after": run_after, **({"runs": [{}]} if "bulk" in form else {})}
    done = operator_api.post(path, body)
    assert done.status_code == 422, done.json()
    assert done.json()["detail"] == (
        f"run_after {run_after.replace('Z', '+00:00')} is too far ahead: a run starts at most "
        "3650 days from now"
    )
    assert Run.objects.count() == 0


def test_the_schema_gives_the_longest_delay(operator_api):
    schemas = operator_api.get("/api/openapi.json").json()["components"]["schemas"]
    for name in ("RunIn", "RunBulkIn"):
        delay = schemas[name]["properties"]["delay_seconds"]["anyOf"][0]
        assert delay["maximum"] == 315360000


def test_the_bulk_form_queues_every_run_in_one_request(operator_api):
    path = f"/api/pipelines/{pipeline_id('t-single')}/runs/bulk"
    done = operator_api.post(path, {"runs": [{"n": 1}, {"n": 2}, None], "queue": "bulk"})
    assert done.status_code == 201, done.json()
    assert [r["metadata"].get("n") for r in done.json()] == [1, 2, None]
    assert Run.objects.filter(queue="bulk").count() == 3


@pytest.mark.parametrize(
    "body",
    [{"runs": []}, {"runs": [{}] * 1001}, {"runs": [{"n": 1}], "queue": "a b"}],
)
def test_a_bad_bulk_request_queues_nothing(operator_api, body):
    path = f"/api/pipelines/{pipeline_id('t-single')}/runs/bulk"
    assert operator_api.post(path, body).status_code == 422
    assert Run.objects.count() == 0


def test_the_bulk_form_of_an_unknown_pipeline_is_a_404(operator_api):
    assert operator_api.post("/api/pipelines/999999/runs/bulk", {"runs": [{}]}).status_code == 404


def test_a_unique_key_returns_the_run_holding_it(operator_api):
    path = f"/api/pipelines/{pipeline_id('t-single')}/runs"
    first = operator_api.post(path, {"metadata": {"c": 1}, "unique_key": "sync-7"})
    again = operator_api.post(path, {"metadata": {"c": 2}, "unique_key": "sync-7"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["unique_key"] == "sync-7"
    assert Run.objects.count() == 1
    assert operator_api.post(path, {"unique_key": ""}).status_code == 422
