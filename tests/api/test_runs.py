from __future__ import annotations

import uuid

import pytest
from django.db.models.functions import Now

from orbit.core.tokens import create_token
from pipelines.models import Pipeline
from runs import enqueue
from runs.lifecycle import run_cancel
from runs.models import Run, RunStatus, Step, StepStatus
from tests.api.conftest import OPERATOR, Api, make_user, pipeline_id
from tests.factories import StepAttemptFactory, WorkerFactory

pytestmark = pytest.mark.django_db


def fail(run: Run, error: str = "boom") -> Run:
    Run.objects.filter(id=run.id).update(status=RunStatus.FAILED, finished_at=Now(), error=error)
    run.refresh_from_db()
    return run


def interrupt(run: Run) -> Run:
    """As if its worker died while running the first step."""
    Run.objects.filter(id=run.id).update(
        status=RunStatus.RUNNING,
        fence=1,
        current_step="one",
        lease_expires_at="2000-01-01T00:00:00Z",
        started_at=Now(),
    )
    Step.objects.filter(run=run, position=0).update(status=StepStatus.RUNNING, started_at=Now())
    run.refresh_from_db()
    return run


# --- Creating runs ----------------------------------------------------------------------------


def test_create_run_returns_201_with_its_steps(operator_api):
    response = operator_api.post(
        f"/api/pipelines/{pipeline_id('t-three')}/runs", {"metadata": {"n": 1}, "priority": 5}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["pipeline"], body["status"], body["metadata"], body["priority"]) == (
        "t-three",
        "pending",
        {"n": 1},
        5,
    )
    assert [s["name"] for s in body["steps"]] == ["one", "two", "three"]
    assert Run.objects.get(id=body["id"]).status == RunStatus.PENDING


def test_create_run_without_a_body_uses_the_defaults(operator_api):
    response = operator_api.post(f"/api/pipelines/{pipeline_id('t-single')}/runs")
    assert response.status_code == 201
    assert (response.json()["metadata"], response.json()["priority"]) == ({}, 0)


def test_idempotency_key_returns_the_first_run(operator_api):
    path = f"/api/pipelines/{pipeline_id('t-single')}/runs"
    first = operator_api.post(path, {"metadata": {"a": 1}}, headers={"Idempotency-Key": "order-42"})
    again = operator_api.post(path, {"metadata": {"a": 1}}, headers={"Idempotency-Key": "order-42"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["idempotency_key"] == "order-42"
    assert Run.objects.count() == 1


def test_another_callers_idempotency_key_never_returns_their_run(operator_api, test_pipelines):
    """Keys are scoped to the caller: replaying someone else's key makes a run of one's own."""
    path = f"/api/pipelines/{pipeline_id('t-single')}/runs"
    _, other_key = create_token(make_user("operator-2", OPERATOR), "tests")
    other = Api(other_key)
    theirs = operator_api.post(
        path, {"metadata": {"card": "theirs"}}, headers={"Idempotency-Key": "k1"}
    )
    mine = other.post(path, {"metadata": {"card": "mine"}}, headers={"Idempotency-Key": "k1"})
    assert (theirs.status_code, mine.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]
    assert mine.json()["metadata"] == {"card": "mine"}
    assert mine.json()["idempotency_key"] == "k1"
    assert Run.objects.count() == 2


@pytest.mark.parametrize(
    "second",
    [
        {"metadata": {"a": 2}},  # other metadata
        {"metadata": {"a": 1}, "priority": 5},  # another priority
        {},  # no metadata at all
    ],
)
def test_the_same_key_with_a_different_request_is_a_409(operator_api, second):
    path = f"/api/pipelines/{pipeline_id('t-single')}/runs"
    first = operator_api.post(path, {"metadata": {"a": 1}}, headers={"Idempotency-Key": "order-7"})
    again = operator_api.post(path, second, headers={"Idempotency-Key": "order-7"})
    assert again.status_code == 409
    assert again.json()["detail"] == (
        f"Idempotency-Key 'order-7' was already used for a different request (run "
        f"{first.json()['id']}): repeat it with the same metadata and priority, or use a new key"
    )
    assert Run.objects.count() == 1


def test_a_unique_key_with_a_nul_is_a_422_and_queues_nothing(operator_api):
    # (an Idempotency-Key header is printable ASCII: test_malformed_input.py)
    response = operator_api.post(
        f"/api/pipelines/{pipeline_id('t-single')}/runs", {"metadata": {}, "unique_key": "a\x00b"}
    )
    assert response.status_code == 422, response.content
    assert response.json()["detail"] == (
        "unique keys cannot hold a NUL character or an unpaired surrogate"
    )
    assert not Run.objects.exists()


def test_a_step_name_no_database_can_store_is_a_404(viewer_api, test_pipelines):
    run = enqueue("t-single")
    for name in ("a%00b", "%ED%A0%80"):  # a NUL; a lone surrogate, as UTF-8 bytes
        response = viewer_api.client.get(
            f"/api/runs/{run.id}/steps/{name}/logs", headers=viewer_api._headers(None)
        )
        assert response.status_code == 404, (name, response.content)
        assert "has no step named" in response.json()["detail"]


def test_a_repeated_key_cannot_test_a_guess_of_a_masked_default(operator_api):
    """The operator reads the pipeline's secret default masked; repeating a key with a
    guess must answer the same whether the guess is right or wrong."""
    Pipeline.objects.filter(name="t-single").update(
        default_metadata={"db_password": "s3cret-default", "region": "eu"}
    )
    path = f"/api/pipelines/{pipeline_id('t-single')}/runs"
    key = {"Idempotency-Key": "probe-1"}
    first = operator_api.post(path, {"metadata": {}}, headers=key)
    assert first.status_code == 201
    assert first.json()["metadata"]["db_password"] != "s3cret-default"  # masked
    answers = {
        guess: operator_api.post(path, {"metadata": {"db_password": guess}}, headers=key)
        for guess in ("wrong-guess", "s3cret-default")
    }
    assert {g: (r.status_code, r.json()["id"]) for g, r in answers.items()} == {
        g: (201, first.json()["id"]) for g in answers
    }
    # what is not secret is still compared
    assert operator_api.post(path, {"metadata": {"region": "us"}}, headers=key).status_code == 409
    assert Run.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"metadata": [1, 2]}, "metadata", "Input should be a valid dictionary"),  # not an object
        (
            {"priority": "high"},
            "priority",
            "Input should be a valid integer, unable to parse string as an integer",
        ),  # not a number
        ({"priority": 10**7}, "priority", "Input should be less than or equal to 1000000"),  # range
        (
            {"metadata": {}, "queues": "x"},
            "queues",
            "Extra inputs are not permitted",
        ),  # unknown field (`queue` is a field since flow control)
    ],
)
def test_create_run_rejects_bad_input_naming_the_field(operator_api, body, field, message):
    response = operator_api.post(f"/api/pipelines/{pipeline_id('t-single')}/runs", body)
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": field, "message": message}]
    assert response.json()["detail"] == f"{field}: {message}"
    assert not Run.objects.exists()


def test_create_run_with_oversized_metadata_is_413(operator_api):
    response = operator_api.post(
        f"/api/pipelines/{pipeline_id('t-single')}/runs", {"metadata": {"x": "y" * 300_000}}
    )
    assert response.status_code == 413
    assert response.json()["detail"].endswith(
        "the limit is 262144 bytes (ORBIT_MAX_METADATA_BYTES)"
    )
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",  # malformed
        '{"metadata": ',  # truncated
    ],
)
def test_malformed_json_is_400(operator_api, raw):
    response = operator_api.post(f"/api/pipelines/{pipeline_id('t-single')}/runs", raw=raw)
    assert response.status_code == 400
    assert response.json() == {"detail": "Cannot parse request body"}


def test_create_run_for_an_unknown_pipeline_is_404(operator_api):
    response = operator_api.post("/api/pipelines/999999/runs", {})
    assert response.status_code == 404
    assert response.json() == {"detail": "No pipeline with id 999999"}


def test_create_run_of_a_definition_gone_from_code_is_404(operator_api):
    from pipelines.models import Pipeline

    gone = Pipeline.objects.create(name="gone", definition="no-such-code")
    response = operator_api.post(f"/api/pipelines/{gone.id}/runs", {})
    assert response.status_code == 404
    assert response.json()["detail"] == (
        "Pipeline 'gone' runs definition 'no-such-code', which no longer exists in code; "
        "it cannot start runs"
    )


def test_create_run_of_a_disabled_pipeline_is_409_and_queues_nothing(operator_api):
    from pipelines.models import Pipeline

    Pipeline.objects.filter(name="t-single").update(enabled=False)
    response = operator_api.post(f"/api/pipelines/{pipeline_id('t-single')}/runs", {})
    assert response.status_code == 409
    assert response.json() == {"detail": "Pipeline 't-single' is disabled; enable it to run it"}
    assert not Run.objects.exists()


def test_viewer_cannot_create_runs(viewer_api):
    response = viewer_api.post(f"/api/pipelines/{pipeline_id('t-single')}/runs", {})
    assert response.status_code == 403
    assert response.json() == {
        "detail": "You do not have permission to do this (needs runs.operate_run)"
    }
    assert not Run.objects.exists()


# --- Reading runs -----------------------------------------------------------------------------


def test_run_detail_has_steps_and_their_attempts(viewer_api):
    run = enqueue("t-three", metadata={"k": "v"})
    step = run.steps.get(name="one")
    worker = WorkerFactory(name="w-1")
    StepAttemptFactory(
        step=step, number=1, outcome="failed", error="nope", worker=worker, duration=0.5
    )
    StepAttemptFactory(step=step, number=2, outcome="succeeded")
    response = viewer_api.get(f"/api/runs/{run.id}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(run.id)
    [one, two, three] = body["steps"]
    assert (one["name"], two["name"], three["name"]) == ("one", "two", "three")
    assert [
        (a["number"], a["outcome"], a["error"], a["worker"]) for a in one["attempt_records"]
    ] == [
        (1, "failed", "nope", "w-1"),
        (2, "succeeded", "", None),
    ]


def test_run_detail_of_an_unknown_run_is_404(viewer_api):
    missing = uuid.uuid4()
    response = viewer_api.get(f"/api/runs/{missing}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"No run with id {missing}"}


def test_run_detail_with_a_malformed_id_is_422_naming_it(viewer_api):
    response = viewer_api.get("/api/runs/not-a-uuid")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "run_id"


def test_run_steps_in_order(viewer_api):
    run = enqueue("t-three")
    response = viewer_api.get(f"/api/runs/{run.id}/steps")
    assert response.status_code == 200
    assert [s["name"] for s in response.json()] == ["one", "two", "three"]


def test_list_runs_newest_first_with_filters(viewer_api):
    a = enqueue("t-single")
    b = enqueue("t-three")
    c = enqueue("t-single")
    run_cancel(c.id)
    assert [r["id"] for r in viewer_api.get("/api/runs").json()["items"]] == [
        str(c.id),
        str(b.id),
        str(a.id),
    ]
    by_pipeline = viewer_api.get("/api/runs", {"pipeline": "t-single"}).json()["items"]
    assert [r["id"] for r in by_pipeline] == [str(c.id), str(a.id)]
    by_status = viewer_api.get("/api/runs", {"status": "pending"}).json()["items"]
    assert [r["id"] for r in by_status] == [str(b.id), str(a.id)]


def test_pagination_walks_every_run_once_even_while_runs_are_added(viewer_api):
    created = [enqueue("t-single").id for _ in range(7)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = viewer_api.get("/api/runs", params).json()
        seen += [r["id"] for r in page["items"]]
        pages += 1
        enqueue("t-single")  # newer runs must not shift the pages already handed out
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # newest first: by the database's creation time, then by id (runs queued in the same
    # tick of its clock, a millisecond on SQLite, are ordered by id, not by when queued)
    listed = Run.objects.filter(id__in=created).order_by("-created_at", "-id")
    assert seen == [str(run.id) for run in listed]
    assert pages == 3


def test_runs_created_in_the_same_instant_are_paged_by_id(viewer_api):
    runs = [enqueue("t-single") for _ in range(5)]
    Run.objects.update(created_at="2030-01-01T00:00:00Z")
    seen = []
    cursor = None
    while True:
        page = viewer_api.get("/api/runs", {"limit": 2, **({"cursor": cursor} if cursor else {})})
        seen += [r["id"] for r in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(str(r.id) for r in runs)
    assert len(seen) == 5


def test_pipeline_runs_are_paged_the_same_way(viewer_api):
    mine = [enqueue("t-three").id for _ in range(3)]
    enqueue("t-single")
    page = viewer_api.get(f"/api/pipelines/{pipeline_id('t-three')}/runs", {"limit": 2}).json()
    assert [r["id"] for r in page["items"]] == [str(mine[2]), str(mine[1])]
    rest = viewer_api.get(
        f"/api/pipelines/{pipeline_id('t-three')}/runs", {"cursor": page["next_cursor"]}
    ).json()
    assert [r["id"] for r in rest["items"]] == [str(mine[0])]
    assert rest["next_cursor"] is None


def test_runs_are_found_by_an_id_fragment_metadata_and_creation_time(viewer_api):
    acme = enqueue("t-single", metadata={"customer": "acme", "region": "eu"})
    globex = enqueue("t-three", metadata={"customer": "globex", "region": "eu"})
    Run.objects.filter(id=globex.id).update(created_at="2020-06-01T12:00:00Z")

    def ids(params):
        response = viewer_api.get("/api/runs", params)
        assert response.status_code == 200, response.content
        return [r["id"] for r in response.json()["items"]]

    # The end of the id, the part lists show: runs of the same minute share their start.
    assert ids({"q": str(acme.id)[-8:]}) == [str(acme.id)]
    assert ids({"id": str(globex.id)[:23]}) == [str(globex.id)]
    assert ids({"metadata.customer": "acme"}) == [str(acme.id)]
    assert ids({"metadata.region": "eu", "pipeline": "t-three"}) == [str(globex.id)]
    assert ids({"metadata.region": "eu", "created_before": "2020-12-31"}) == [str(globex.id)]
    assert ids({"created_after": "2021-01-01T00:00:00Z"}) == [str(acme.id)]
    assert ids({"metadata.customer": "initech"}) == []
    assert ids({"metadata.customer": "1e999"}) == []  # a number no float holds: text only


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"metadata.api_key": "sk-live-1"}, "Metadata key 'api_key' is masked (ORBIT_REDACT_KEYS)"),
        ({"metadata.customer": "a\x00b"}, "metadata.customer holds a control character"),
        ({"metadata.customer": "x" * 201}, "metadata.customer is longer than 200 characters"),
        ({"q": "zz-not-an-id"}, "Not part of a run id"),
        ({"q": "0" * 40}, "A run id has 36 characters"),
        ({"created_after": "last tuesday"}, "created_after is not a date or date-time"),
        ({"created_before": "2026-02-30"}, "created_before is not a date or date-time"),
        # later than the last moment a date-time can hold in UTC
        (
            {"created_after": "9999-12-31T23:59:59-05:00"},
            "created_after is out of range: '9999-12-31T23:59:59-05:00'",
        ),
        # earlier than the first
        (
            {"created_before": "0001-01-01T00:00:00+05:00"},
            "created_before is out of range: '0001-01-01T00:00:00+05:00'",
        ),
    ],
)
def test_a_search_orbit_cannot_answer_is_a_400_saying_why(viewer_api, params, detail):
    enqueue("t-single", metadata={"api_key": "sk-live-1", "customer": "acme"})
    response = viewer_api.get("/api/runs", params)
    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith(detail)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),  # below 1
        ({"limit": 201}, "limit"),  # above 200
        ({"status": "sleeping"}, "status"),  # not a run status
        ({"cursor": "bm9wZQ"}, "cursor"),  # base64 of "nope"
        ({"cursor": "%%%"}, "cursor"),  # not base64
    ],
)
def test_list_runs_rejects_bad_parameters_naming_them(viewer_api, params, field):
    response = viewer_api.get("/api/runs", params)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field


def test_invalid_cursor_says_what_to_pass(viewer_api):
    response = viewer_api.get("/api/runs", {"cursor": "bm9wZQ"})
    assert response.json()["detail"] == (
        "The cursor is not one this API returned: pass `next_cursor` from the previous page."
    )


# --- Acting on runs ---------------------------------------------------------------------------


def test_rerun_with_edited_metadata_links_both_ways_and_is_audited(operator_api):
    from orbit.core.models import AuditAction, AuditEvent

    original = fail(enqueue("t-three", metadata={"customer": "acme", "password": "s3cret"}))
    sent = {"customer": "globex", "password": "[redacted]"}  # as read back, then edited
    response = operator_api.post(f"/api/runs/{original.id}/rerun", {"metadata": sent})
    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["rerun_of"], body["pipeline"]) == (
        "pending",
        str(original.id),
        "t-three",
    )
    rerun = Run.objects.get(id=body["id"])
    assert rerun.metadata == {"customer": "globex", "password": "s3cret"}  # the secret kept
    assert [s.status for s in rerun.steps.all()] == ["pending"] * 3  # every step runs again
    again = operator_api.get(f"/api/runs/{original.id}").json()
    assert again["reruns"] == [str(rerun.id)] and again["status"] == "failed"
    (event,) = AuditEvent.objects.filter(target_id=str(rerun.id))
    assert (event.action, event.actor) == (AuditAction.RUN_RERUN, "operator")
    assert (event.changes["rerun_of"], event.changes["metadata"]) == (
        str(original.id),
        {"changed_keys": ["customer"]},
    )


def test_rerun_without_a_body_keeps_the_metadata(operator_api):
    original = enqueue("t-single", metadata={"n": 1})
    body = operator_api.post(f"/api/runs/{original.id}/rerun").json()
    assert Run.objects.get(id=body["id"]).metadata == {"n": 1}


def test_rerun_of_a_disabled_pipeline_is_409(operator_api):
    from pipelines.models import Pipeline

    original = enqueue("t-single")
    Pipeline.objects.filter(name="t-single").update(enabled=False)
    response = operator_api.post(f"/api/runs/{original.id}/rerun")
    assert response.status_code == 409
    assert Run.objects.count() == 1


def test_retry_a_failed_run(operator_api):
    run = fail(enqueue("t-single"))
    response = operator_api.post(f"/api/runs/{run.id}/retry")
    assert response.status_code == 200
    assert response.json()["status"] == "pending"
    assert Run.objects.get(id=run.id).status == RunStatus.PENDING


def test_retry_a_pending_run_is_409_saying_why(operator_api):
    run = enqueue("t-single")
    response = operator_api.post(f"/api/runs/{run.id}/retry")
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Run {run.id} is pending; only failed or cancelled runs can be retried"
    }


def test_cancel_a_pending_run(operator_api):
    run = enqueue("t-single")
    response = operator_api.post(f"/api/runs/{run.id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"


def test_cancel_a_finished_run_is_409(operator_api):
    run = fail(enqueue("t-single"))
    response = operator_api.post(f"/api/runs/{run.id}/cancel")
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Run {run.id} is failed; only pending or running runs can be cancelled"
    }


def test_resume_an_interrupted_run(operator_api):
    run = interrupt(enqueue("t-three"))
    response = operator_api.post(f"/api/runs/{run.id}/resume")
    assert response.status_code == 200
    assert response.json()["status"] == "pending"
    assert response.json()["steps"][0]["attempt_records"][0]["outcome"] == "interrupted"


def test_resume_a_finished_run_is_409(operator_api):
    run = fail(enqueue("t-single"))
    response = operator_api.post(f"/api/runs/{run.id}/resume")
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Run {run.id} already finished: it failed (use retry for a failed or cancelled run)"
    }


@pytest.mark.parametrize("action", ["retry", "cancel", "resume"])
def test_actions_on_an_unknown_run_are_404(operator_api, action):
    missing = uuid.uuid4()
    response = operator_api.post(f"/api/runs/{missing}/{action}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"No run with id {missing}"}


@pytest.mark.parametrize("action", ["retry", "cancel", "resume"])
def test_viewer_cannot_act_on_runs(viewer_api, action):
    run = fail(enqueue("t-single"))
    response = viewer_api.post(f"/api/runs/{run.id}/{action}")
    assert response.status_code == 403
    assert response.json() == {
        "detail": "You do not have permission to do this (needs runs.operate_run)"
    }
    assert Run.objects.get(id=run.id).status == RunStatus.FAILED


# --- Errors nobody planned for ----------------------------------------------------------------


def test_an_unexpected_error_is_a_json_500_without_details(viewer_api, monkeypatch):
    def broken(run_id):
        raise RuntimeError("password=hunter2 in a traceback")

    monkeypatch.setattr("orbit.api.runs.run_with_steps", broken)
    response = viewer_api.get(f"/api/runs/{uuid.uuid4()}")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error; it has been logged"}
    assert b"hunter2" not in response.content


def test_a_body_over_the_upload_limit_is_413(operator_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = operator_api.post(
        f"/api/pipelines/{pipeline_id('t-single')}/runs", {"metadata": {"x": "y" * 2000}}
    )
    assert response.status_code == 413
    assert response.json() == {"detail": "The request body is too large"}
    assert not Run.objects.exists()
