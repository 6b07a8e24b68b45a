"""Archiving over the API: /api/pipelines/{id}/archive|unarchive, by role, audited, with
a pipeline still in code and an unknown id refused; an archived pipeline's runs refused."""

from __future__ import annotations

import pytest
from django.db.models.functions import Now

from orbit.core.models import AuditEvent
from pipelines.models import Pipeline
from runs.models import Run


@pytest.fixture
def gone(db, test_pipelines) -> Pipeline:
    row = Pipeline.objects.create(name="scratch", definition="scratch-gone")
    Run.objects.create(pipeline=row, status="succeeded")
    return row


def audit() -> list[tuple[str, str, str, str]]:
    return list(
        AuditEvent.objects.filter(action__startswith="pipeline.")
        .order_by("id")
        .values_list("action", "source", "actor", "target_id")
    )


def test_an_operator_archives_and_unarchives_a_missing_definition(alice, gone):
    response = alice.post(f"/api/pipelines/{gone.id}/archive")
    assert response.status_code == 200
    body = response.json()
    assert (body["archived"], body["archived_by"], body["in_code"]) == (True, "alice", False)
    assert body["archived_at"] is not None
    names = {p["name"] for p in alice.get("/api/pipelines", {"archived": "false"}).json()}
    assert "scratch" not in names and "t-single" in names
    assert [p["name"] for p in alice.get("/api/pipelines", {"archived": "true"}).json()] == [
        "scratch"
    ]
    assert "scratch" in {p["name"] for p in alice.get("/api/pipelines").json()}
    # Its runs stay visible.
    runs = alice.get(f"/api/pipelines/{gone.id}/runs").json()
    assert len(runs["items"]) == 1
    again = alice.post(f"/api/pipelines/{gone.id}/archive")
    assert again.status_code == 200 and again.json()["archived_by"] == "alice"
    back = alice.post(f"/api/pipelines/{gone.id}/unarchive")
    assert back.status_code == 200
    assert (back.json()["archived"], back.json()["archived_by"]) == (False, "")
    assert audit() == [
        ("pipeline.archived", "api", "alice", str(gone.id)),
        ("pipeline.unarchived", "api", "alice", str(gone.id)),
    ]


def test_archiving_a_pipeline_still_in_code_is_a_409_and_changes_nothing(alice):
    row = Pipeline.objects.get(name="t-single")
    response = alice.post(f"/api/pipelines/{row.id}/archive")
    assert response.status_code == 409
    assert "which is still in code" in response.json()["detail"]
    assert "disable it instead" in response.json()["detail"]
    assert not Pipeline.objects.get(id=row.id).is_archived
    assert audit() == []


def test_an_unknown_pipeline_is_a_404(alice):
    for path in ("/api/pipelines/424242/archive", "/api/pipelines/424242/unarchive"):
        response = alice.post(path)
        assert response.status_code == 404
        assert response.json()["detail"] == "No pipeline with id 424242"
    assert audit() == []


def test_a_viewer_may_not_archive_or_unarchive(viewer, gone):
    assert viewer.post(f"/api/pipelines/{gone.id}/archive").status_code == 403
    Pipeline.objects.filter(id=gone.id).update(archived_by="x", archived_at=Now())
    assert viewer.post(f"/api/pipelines/{gone.id}/unarchive").status_code == 403
    assert Pipeline.objects.get(id=gone.id).archived_by == "x"
    assert audit() == []


def test_an_archived_pipelines_runs_are_refused_with_a_409(alice, gone):
    alice.post(f"/api/pipelines/{gone.id}/archive")
    for path, body in (
        (f"/api/pipelines/{gone.id}/runs", {"metadata": {}}),
        (f"/api/pipelines/{gone.id}/runs/bulk", {"runs": [{}]}),
    ):
        response = alice.post(path, body)
        assert response.status_code == 409, response.content
        assert response.json()["detail"] == (
            "Pipeline 'scratch' is archived; unarchive it to run it"
        )
    assert Run.objects.filter(pipeline=gone).count() == 1
