from __future__ import annotations

import pytest

from runs import enqueue
from runs.models import Step, StepStatus
from tests.factories import StepAttemptFactory

pytestmark = pytest.mark.django_db

LOGS = [
    {
        "time": "2030-01-01T00:00:00+00:00",
        "level": "INFO",
        "message": "fetched 3 rows",
        "fields": {"rows": 3, "table": "orders"},
        "attempt": 1,
    },
    {
        "time": "2030-01-01T00:00:01+00:00",
        "level": "ERROR",
        "message": "gave up",
        "fields": {},
        "attempt": 2,
    },
]


def test_step_detail_has_its_attempts_and_pipeline(viewer_api):
    run = enqueue("t-three")
    step = run.steps.get(name="two")
    StepAttemptFactory(step=step, number=1, outcome="timed_out", error="ran past 1 s")
    body = viewer_api.get(f"/api/steps/{step.id}").json()
    assert (body["name"], body["run_id"], body["pipeline"], body["position"]) == (
        "two",
        str(run.id),
        "t-three",
        1,
    )
    assert [(a["number"], a["outcome"], a["error"]) for a in body["attempt_records"]] == [
        (1, "timed_out", "ran past 1 s")
    ]


def test_unknown_step_is_404(viewer_api):
    response = viewer_api.get("/api/steps/987654")
    assert response.status_code == 404
    assert response.json() == {"detail": "No step with id 987654"}


def test_step_logs_with_structured_fields(viewer_api):
    run = enqueue("t-single")
    step = run.steps.get()
    Step.objects.filter(id=step.id).update(logs=LOGS)
    response = viewer_api.get(f"/api/steps/{step.id}/logs")
    assert response.status_code == 200
    assert response.json() == {"step_id": step.id, "records": LOGS}


def test_logs_of_an_unknown_step_are_404(viewer_api):
    assert viewer_api.get("/api/steps/987654/logs").status_code == 404


def test_list_steps_newest_first_filtered_and_paged(viewer_api):
    first, second = enqueue("t-three"), enqueue("t-three")
    Step.objects.filter(run=first, name="one").update(status=StepStatus.FAILED)
    Step.objects.filter(run=second, name="two").update(status=StepStatus.FAILED)
    failed = viewer_api.get("/api/steps", {"status": "failed"}).json()
    assert [(s["run_id"], s["name"]) for s in failed["items"]] == [
        (str(second.id), "two"),
        (str(first.id), "one"),
    ]
    ids = []
    cursor = None
    while True:
        page = viewer_api.get("/api/steps", {"limit": 4, **({"cursor": cursor} if cursor else {})})
        ids += [s["id"] for s in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert ids == sorted(Step.objects.values_list("id", flat=True), reverse=True)


def test_list_steps_rejects_an_unknown_status(viewer_api):
    response = viewer_api.get("/api/steps", {"status": "stuck"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "status"


@pytest.mark.parametrize("path", ["/api/steps", "/api/steps/1", "/api/steps/1/logs"])
def test_steps_need_authentication(anonymous_api, path):
    assert anonymous_api.get(path).status_code == 401
