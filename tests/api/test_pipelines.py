from __future__ import annotations

import pytest
from django.db.models.functions import Now

from pipelines.models import Pipeline
from runs import enqueue
from runs.models import Run, RunStatus
from tests.api.conftest import pipeline_id

pytestmark = pytest.mark.django_db


def test_list_pipelines_with_their_steps(viewer_api):
    response = viewer_api.get("/api/pipelines")
    assert response.status_code == 200
    three = next(p for p in response.json() if p["name"] == "t-three")
    assert [s["name"] for s in three["steps"]] == ["one", "two", "three"]
    assert three["in_code"] is True
    flaky = next(p for p in response.json() if p["name"] == "t-flaky")
    assert flaky["steps"][0] == {"name": "flaky", "max_retries": 3, "timeout": 300.0}


def test_pipeline_detail_has_schedule_next_fire_time_and_success_rate(admin_api):
    row = Pipeline.objects.get(name="t-single")
    row.schedule = "0 3 * * *"
    row.save()
    ok, bad, _ = enqueue("t-single"), enqueue("t-single"), enqueue("t-single")
    Run.objects.filter(id__in=[ok.id]).update(status=RunStatus.SUCCEEDED, finished_at=Now())
    Run.objects.filter(id__in=[bad.id]).update(status=RunStatus.FAILED, finished_at=Now())
    body = admin_api.get(f"/api/pipelines/{row.id}").json()
    assert body["schedule"] == "0 3 * * *"
    assert body["schedule_description"] == "At 03:00 every day"
    assert body["next_fire_time"].endswith("T03:00:00Z")
    assert body["success_rate"] == 0.5


def test_pipeline_detail_without_schedule_has_no_next_fire_time(viewer_api):
    body = viewer_api.get(f"/api/pipelines/{pipeline_id('t-single')}").json()
    assert (body["next_fire_time"], body["success_rate"]) == (None, None)


def test_unknown_pipeline_is_404(viewer_api):
    response = viewer_api.get("/api/pipelines/424242")
    assert response.status_code == 404
    assert response.json() == {"detail": "No pipeline with id 424242"}


def test_create_a_pipeline_for_a_definition_in_code(admin_api):
    response = admin_api.post(
        "/api/pipelines",
        {
            "name": "three-nightly",
            "definition": "t-three",
            "schedule": "@daily",
            "default_metadata": {"region": "eu"},
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["definition"], body["schedule"], body["enabled"]) == (
        "three-nightly",
        "t-three",
        "@daily",
        True,
    )
    assert body["next_fire_time"].endswith("T00:00:00Z")
    row = Pipeline.objects.get(name="three-nightly")
    assert row.default_metadata == {"region": "eu"}


@pytest.mark.parametrize(
    ("body", "field", "detail"),
    [
        # the definition must exist in code
        (
            {"name": "x", "definition": "nope"},
            "definition",
            "No pipeline definition named 'nope' in code. Known definitions: ",
        ),
        # the cron expression must parse
        (
            {"name": "x", "definition": "t-single", "schedule": "61 * * * *"},
            "schedule",
            "Schedule '61 * * * *': the minute field '61' is invalid (allowed: 0-59)",
        ),
        # names follow the definition rules
        (
            {"name": "no spaces", "definition": "t-single"},
            "name",
            "name: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$'",
        ),
        # a field the model does not have
        ({"name": "x", "definition": "t-single", "steps": []}, "steps", "steps: Extra inputs"),
        # required fields
        ({"name": "x"}, "definition", "definition: Field required"),
    ],
)
def test_create_pipeline_rejects_bad_input_naming_the_field(admin_api, body, field, detail):
    before = Pipeline.objects.count()
    response = admin_api.post("/api/pipelines", body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field
    assert response.json()["detail"].startswith(detail)
    assert Pipeline.objects.count() == before


def test_create_pipeline_with_a_taken_name_is_409(admin_api):
    response = admin_api.post("/api/pipelines", {"name": "t-single", "definition": "t-three"})
    assert response.status_code == 409
    assert response.json() == {"detail": "A pipeline named 't-single' already exists"}


def test_create_pipeline_with_oversized_default_metadata_is_413(admin_api):
    response = admin_api.post(
        "/api/pipelines",
        {"name": "big", "definition": "t-single", "default_metadata": {"x": "y" * 300_000}},
    )
    assert response.status_code == 413
    assert not Pipeline.objects.filter(name="big").exists()


def test_patch_changes_only_the_given_fields(admin_api):
    row = Pipeline.objects.get(name="t-single")
    response = admin_api.patch(
        f"/api/pipelines/{row.id}", {"enabled": False, "schedule": "*/5 * * * *"}
    )
    assert response.status_code == 200, response.content
    row.refresh_from_db()
    assert (row.enabled, row.schedule, row.name) == (False, "*/5 * * * *", "t-single")
    assert response.json()["next_fire_time"] is None  # disabled


def test_patch_can_clear_the_schedule(admin_api):
    row = Pipeline.objects.get(name="t-single")
    row.schedule = "@hourly"
    row.save()
    assert admin_api.patch(f"/api/pipelines/{row.id}", {"schedule": ""}).status_code == 200
    row.refresh_from_db()
    assert row.schedule == ""


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"schedule": "every day"}, 422, "Schedule 'every day' has 2 fields"),  # bad cron
        ({"definition": "t-three"}, 422, "definition: Extra inputs are not permitted"),  # fixed
        ({"name": "t-three"}, 409, "A pipeline named 't-three' already exists"),  # taken
        ({"enabled": "maybe"}, 422, "enabled: Input should be a valid boolean"),  # not a bool
    ],
)
def test_patch_refuses_bad_changes_and_changes_nothing(admin_api, body, status, detail):
    row = Pipeline.objects.get(name="t-single")
    response = admin_api.patch(f"/api/pipelines/{row.id}", body)
    assert response.status_code == status
    assert response.json()["detail"].startswith(detail)
    fresh = Pipeline.objects.get(id=row.id)
    assert (fresh.name, fresh.schedule, fresh.definition, fresh.enabled) == (
        "t-single",
        "",
        "t-single",
        True,
    )


def test_delete_a_pipeline_without_runs(admin_api):
    row = Pipeline.objects.create(name="spare", definition="t-single")
    response = admin_api.delete(f"/api/pipelines/{row.id}")
    assert response.status_code == 204
    assert not Pipeline.objects.filter(id=row.id).exists()


def test_delete_a_pipeline_with_runs_is_409(admin_api):
    enqueue("t-single")
    response = admin_api.delete(f"/api/pipelines/{pipeline_id('t-single')}")
    assert response.status_code == 409
    assert response.json() == {
        "detail": "Pipeline 't-single' has 1 run; disable it instead of deleting it, "
        "so its history is kept"
    }
    assert Pipeline.objects.filter(name="t-single").exists()


@pytest.mark.parametrize(
    ("method", "path", "body", "permission"),
    [
        (
            "post",
            "/api/pipelines",
            {"name": "x", "definition": "t-single"},
            "pipelines.add_pipeline",
        ),
        ("patch", "/api/pipelines/{id}", {"enabled": False}, "pipelines.change_pipeline"),
        ("delete", "/api/pipelines/{id}", None, "pipelines.delete_pipeline"),
    ],
)
def test_operators_cannot_edit_pipelines(operator_api, method, path, body, permission):
    path = path.format(id=pipeline_id("t-single"))
    args = (path,) if body is None else (path, body)
    response = getattr(operator_api, method)(*args)
    assert response.status_code == 403
    assert response.json() == {
        "detail": f"You do not have permission to do this (needs {permission})"
    }
    row = Pipeline.objects.get(name="t-single")
    assert row.enabled is True


def test_the_schedule_in_force_says_where_it_came_from(admin_api):
    from pipelines.models import Pipeline

    row = Pipeline.objects.get(name="t-single")
    body = admin_api.get(f"/api/pipelines/{row.id}").json()
    assert (body["schedule"], body["schedule_source"], body["code_schedule"]) == ("", "code", "")
    changed = admin_api.patch(f"/api/pipelines/{row.id}", {"schedule": "0 3 * * *"}).json()
    assert (changed["schedule"], changed["schedule_source"]) == ("0 3 * * *", "operator")
    back = admin_api.patch(f"/api/pipelines/{row.id}", {"schedule_source": "code"}).json()
    assert (back["schedule"], back["schedule_source"]) == ("", "code")


def test_a_created_pipeline_keeps_the_schedule_its_operator_gave(admin_api):
    response = admin_api.post(
        "/api/pipelines", {"name": "t-single-eu", "definition": "t-single", "schedule": "@daily"}
    )
    assert response.status_code == 201
    assert (response.json()["schedule"], response.json()["schedule_source"]) == (
        "@daily",
        "operator",
    )


def test_a_definition_says_what_metadata_it_expects(viewer_api):
    from pipelines.models import Pipeline

    documents = Pipeline.objects.get(name="document-processing")
    body = viewer_api.get(f"/api/pipelines/{documents.id}").json()
    assert body["metadata_example"] == {"filePath": "/path/to/receipt.pdf"}
    single = Pipeline.objects.get(name="t-single")
    assert viewer_api.get(f"/api/pipelines/{single.id}").json()["metadata_example"] is None
