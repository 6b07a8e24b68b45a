from __future__ import annotations

import base64
import json
from datetime import datetime

import pytest

from runs import enqueue
from runs.models import Run, Step, StepLog, StepStatus
from tests.factories import StepAttemptFactory
from tests.processes import wait_until

pytestmark = pytest.mark.django_db

LOGS = [
    {
        "time": "2030-01-01T00:00:00+00:00",
        "level": "INFO",
        "message": "fetched 3 rows",
        "fields": {"rows": 3, "table": "orders"},
        "attempt": 1,
        "sequence": 0,
    },
    {
        "time": "2030-01-01T00:00:01+00:00",
        "level": "ERROR",
        "message": "gave up",
        "fields": {},
        "attempt": 2,
        "sequence": 0,
    },
    {
        "time": "2030-01-01T00:00:02+00:00",
        "level": "INFO",
        "message": "api_key=hunter2 in the message",
        "fields": {"password": "hunter2"},
        "attempt": 2,
        "sequence": 1,
    },
]


def write_logs(step: Step, records: list[dict]) -> None:
    StepLog.objects.bulk_create(
        StepLog(
            run_id=step.run_id,
            step=step,
            **{k: datetime.fromisoformat(v) if k == "time" else v for k, v in r.items()},
        )
        for r in records
    )


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


def test_step_logs_with_structured_fields_and_secrets_masked(viewer_api):
    run = enqueue("t-single")
    step = run.steps.get()
    write_logs(step, LOGS)
    response = viewer_api.get(f"/api/steps/{step.id}/logs")
    assert response.status_code == 200
    assert response.json() == {
        "step_id": step.id,
        "step": "noop",
        "step_status": "pending",
        "records": [
            LOGS[0],
            LOGS[1],
            {
                **LOGS[2],
                "message": "api_key=[redacted] in the message",
                "fields": {"password": "[redacted]"},
            },
        ],
        "next_cursor": "2.1",
        "more": False,
    }


def test_a_client_polls_for_new_records_with_the_cursor(viewer_api):
    run = enqueue("t-single")
    step = run.steps.get()
    write_logs(step, LOGS[:1])
    url = f"/api/runs/{run.id}/steps/noop/logs"
    first = viewer_api.get(url).json()
    assert ([r["message"] for r in first["records"]], first["next_cursor"]) == (
        ["fetched 3 rows"],
        "1.0",
    )
    nothing_new = viewer_api.get(url, {"after": first["next_cursor"]}).json()
    assert (nothing_new["records"], nothing_new["next_cursor"]) == ([], "1.0")
    write_logs(step, LOGS[1:])
    page = viewer_api.get(url, {"after": "1.0", "limit": 1}).json()
    assert ([r["message"] for r in page["records"]], page["next_cursor"], page["more"]) == (
        ["gave up"],
        "2.0",
        True,
    )


def test_a_cursor_not_given_out_is_refused(viewer_api):
    step = enqueue("t-single").steps.get()
    response = viewer_api.get(f"/api/steps/{step.id}/logs", {"after": "yesterday"})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "Cursor 'yesterday' is not one this API gave out (expected ATTEMPT.SEQUENCE)"
    )


def test_logs_of_an_unknown_step_name_are_404(viewer_api):
    run = enqueue("t-single")
    response = viewer_api.get(f"/api/runs/{run.id}/steps/nope/logs")
    assert response.status_code == 404
    assert response.json() == {"detail": f"Run {run.id} has no step named 'nope'"}


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


def test_the_list_by_status_reads_a_stretch_of_steps_a_page(viewer_api, monkeypatch):
    """No index covers a step's status, so a page of the list by status reads at most
    STEP_STATUS_WINDOW steps newest first: a page may come back short, even empty, with a
    cursor to go on from, and following the cursors finds every step, once, in order."""
    from orbit.api import runs as api_runs

    monkeypatch.setattr(api_runs, "STEP_STATUS_WINDOW", 4)
    runs = [enqueue("t-three") for _ in range(4)]  # 12 steps
    failing = [(runs[0], "one"), (runs[0], "three"), (runs[3], "two")]
    for run, name in failing:
        Step.objects.filter(run=run, name=name).update(status=StepStatus.FAILED)
    expected = list(
        Step.objects.filter(status=StepStatus.FAILED).order_by("-id").values_list("id", flat=True)
    )
    pages, cursor = [], None
    while True:
        response = viewer_api.get(
            "/api/steps", {"status": "failed", "limit": 2, **({"cursor": cursor} if cursor else {})}
        )
        assert response.status_code == 200
        pages.append([s["id"] for s in response.json()["items"]])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 20, "the cursors never ended"
    assert [step_id for page in pages for step_id in page] == expected
    assert any(len(page) < 2 for page in pages[:-1])  # a short page that still went on
    assert [] in pages  # a stretch with none of them


def test_a_step_cursor_outside_the_ids_given_out_is_refused(viewer_api):
    for last_id in (0, -5, 2**63, True, "7"):
        cursor = base64.urlsafe_b64encode(json.dumps([last_id]).encode()).decode().rstrip("=")
        for status in ({}, {"status": "failed"}):
            response = viewer_api.get("/api/steps", {"cursor": cursor, **status})
            assert response.status_code == 422, (last_id, status)


def test_list_steps_rejects_an_unknown_status(viewer_api):
    response = viewer_api.get("/api/steps", {"status": "stuck"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "status"


@pytest.mark.parametrize("path", ["/api/steps", "/api/steps/1", "/api/steps/1/logs"])
def test_steps_need_authentication(anonymous_api, path):
    assert anonymous_api.get(path).status_code == 401


@pytest.mark.django_db(transaction=True)
def test_a_running_steps_records_are_read_before_it_ends(viewer_api, workers, tmp_path):
    """Live logs: the records a step writes reach the API within about a second, while
    the step is still running, and polling with the cursor yields each record once."""
    release = tmp_path / "release"
    run = enqueue("t-live-logs", metadata={"release": str(release), "every": 0.1})
    workers("--no-schedules")
    url = f"/api/runs/{run.id}/steps/waits/logs"
    seen: list[str] = []
    cursor = None

    def poll() -> dict:
        nonlocal cursor
        body = viewer_api.get(url, {"after": cursor} if cursor else {}).json()
        seen.extend(r["message"] for r in body["records"])
        cursor = body["next_cursor"]
        return body

    live = wait_until(
        lambda: (body := poll())["step_status"] == "running" and "tick 3" in seen and body,
        timeout=30,
        message="a running step's records",
    )
    assert live["step_status"] == "running"
    assert not release.exists()
    release.touch()
    wait_until(lambda: Run.objects.get(id=run.id).status == "succeeded", timeout=30)
    poll()
    ticks = [m for m in seen if m.startswith("tick ")]
    assert seen[0] == "waiting" and seen[-1] == "released"
    assert ticks == [f"tick {n}" for n in range(1, len(ticks) + 1)]  # each once, in order
