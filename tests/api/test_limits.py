"""A pipeline's flow limits on the API: shown on every pipeline, set by operators
(PUT .../limits) and admins (PATCH), code or operator as schedules are; bad values are a
4xx and change nothing."""

from __future__ import annotations

import pytest

from orbit.core.models import AuditEvent
from orbit.core.tokens import create_token
from pipelines.models import Pipeline
from runs import enqueue
from runs.models import Run
from tests.api.conftest import VIEWER, Api, make_user, pipeline_id

pytestmark = pytest.mark.django_db


@pytest.fixture
def pipeline_operator_api(db, test_pipelines) -> Api:
    """An operator of pipelines (orbit/core/roles.py): enables, disables, limits."""
    user = make_user("pipeline-operator", (*VIEWER, "pipelines.operate_pipeline"))
    return Api(create_token(user, "tests")[1])


def test_a_pipeline_shows_its_limits_and_what_runs_now(viewer_api, settings):
    settings.ORBIT_VERYFI_RATE_LIMIT = "20/minute"
    Pipeline.objects.filter(name="t-single").update(max_concurrency=4, rate_limit="veryfi")
    run = enqueue("t-single")
    Run.objects.filter(id=run.id).update(status="running")
    body = viewer_api.get(f"/api/pipelines/{pipeline_id('t-single')}").json()
    assert {k: body[k] for k in ("max_concurrency", "running", "rate_limit", "rate")} == {
        "max_concurrency": 4,
        "running": 1,
        "rate_limit": "veryfi",
        "rate": "20/60s",
    }
    (listed,) = [p for p in viewer_api.get("/api/pipelines").json() if p["name"] == "t-single"]
    assert (listed["max_concurrency"], listed["running"]) == (4, 1)


def test_an_operator_sets_the_limit_and_it_stays_the_operators(pipeline_operator_api):
    path = f"/api/pipelines/{pipeline_id('t-single')}/limits"
    response = pipeline_operator_api.put(path, {"max_concurrency": 3})
    assert response.status_code == 200
    body = response.json()
    assert (body["max_concurrency"], body["max_concurrency_source"]) == (3, "operator")
    assert body["code_max_concurrency"] is None
    event = AuditEvent.objects.filter(target_id=str(pipeline_id("t-single"))).latest("id")
    assert event.changes["max_concurrency"] == [None, 3]
    lifted = pipeline_operator_api.put(path, {"max_concurrency": None}).json()
    assert (lifted["max_concurrency"], lifted["max_concurrency_source"]) == (None, "operator")
    back = pipeline_operator_api.put(path, {"follow_code": True}).json()
    assert (back["max_concurrency"], back["max_concurrency_source"]) == (None, "code")


def test_an_admin_sets_it_with_patch(admin_api):
    path = f"/api/pipelines/{pipeline_id('t-single')}"
    body = admin_api.patch(path, {"max_concurrency": 7}).json()
    assert (body["max_concurrency"], body["max_concurrency_source"]) == (7, "operator")


@pytest.mark.parametrize(
    "body",
    [
        {"max_concurrency": 0},  # below one
        {"max_concurrency": -2},
        {"max_concurrency": 100_001},  # above the most accepted
        {"max_concurrency": "three"},  # not a number
        {"max_concurrency": 1.5},  # not whole
        {"max_concurrency": 3, "rate_limit": "1/s"},  # rate limits follow the code only
    ],
)
def test_a_bad_limit_is_422_and_changes_nothing(pipeline_operator_api, body):
    path = f"/api/pipelines/{pipeline_id('t-single')}/limits"
    response = pipeline_operator_api.put(path, body)
    assert response.status_code == 422
    assert Pipeline.objects.get(name="t-single").max_concurrency is None


def test_a_viewer_cannot_set_limits(viewer_api):
    response = viewer_api.put(
        f"/api/pipelines/{pipeline_id('t-single')}/limits", {"max_concurrency": 3}
    )
    assert response.status_code == 403
    assert response.json() == {
        "detail": "You do not have permission to do this (needs pipelines.operate_pipeline)"
    }
    assert Pipeline.objects.get(name="t-single").max_concurrency is None
