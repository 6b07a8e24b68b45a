"""Archiving from the dashboard (the 'definition missing' card, "Show archived") and the
admin, by role, audited, with refusals that change nothing."""

from __future__ import annotations

import pytest
from django.db.models.functions import Now

from orbit.core.audit import Actor
from orbit.core.models import AuditEvent, AuditSource
from pipelines.archiving import pipeline_archive
from pipelines.models import Pipeline
from runs.models import Run
from tests.console.conftest import audit, messages_of

pytestmark = pytest.mark.django_db

ALICE = Actor(source=AuditSource.CLI, name="alice")


@pytest.fixture
def gone(test_pipelines) -> Pipeline:
    row = Pipeline.objects.create(name="scratch", definition="scratch-gone")
    Run.objects.create(pipeline=row, status="succeeded")
    return row


def card(row: Pipeline) -> str:
    return f'id="pipeline-{row.id}"'


# -- dashboard ------------------------------------------------------------------------------


def test_a_missing_definition_card_archives_and_leaves_the_page(alice, gone):
    page = alice.get("/dashboard/pipelines/").content.decode()
    form = f'action="/dashboard/pipelines/{gone.id}/archived/"'
    assert card(gone) in page and form in page and 'data-confirm="Archive scratch?' in page
    assert "Show archived (" not in page
    response = alice.post(f"/dashboard/pipelines/{gone.id}/archived/", {"archived": "1"})
    assert response.status_code == 302
    page = alice.get(response.url)
    assert "Pipeline scratch archived." in messages_of(page)
    content = page.content.decode()
    assert card(gone) not in content and "Show archived (1)" in content
    listed = alice.get("/dashboard/pipelines/?archived=1").content.decode()
    assert card(gone) in listed and "archived by alice" in listed
    assert card(Pipeline.objects.get(name="t-single")) not in listed
    # Its runs stay in run lists and on their pages.
    run = Run.objects.get(pipeline=gone)
    assert str(run.id)[:8] in alice.get("/dashboard/runs/?pipeline=scratch").content.decode()
    assert alice.get(f"/dashboard/runs/{run.id}/").status_code == 200
    response = alice.post(
        f"/dashboard/pipelines/{gone.id}/archived/", {"archived": "0"}, follow=True
    )
    assert "Pipeline scratch unarchived." in messages_of(response)
    assert card(gone) in response.content.decode()
    assert audit("pipeline.archived") == [("dashboard", "alice", str(gone.id))]
    assert audit("pipeline.unarchived") == [("dashboard", "alice", str(gone.id))]


def test_a_card_still_in_code_offers_no_archive_and_a_forged_post_is_a_400(alice):
    row = Pipeline.objects.get(name="t-single")
    page = alice.get("/dashboard/pipelines/").content.decode()
    assert f'action="/dashboard/pipelines/{row.id}/archived/"' not in page
    response = alice.post(f"/dashboard/pipelines/{row.id}/archived/", {"archived": "1"})
    assert response.status_code == 400
    assert "its definition is still in code (disable it instead)" in response.content.decode()
    assert not Pipeline.objects.get(id=row.id).is_archived
    assert alice.post("/dashboard/pipelines/424242/archived/", {"archived": "1"}).status_code == 404
    assert not AuditEvent.objects.filter(action="pipeline.archived").exists()


def test_run_now_of_an_archived_pipeline_is_a_400(alice, test_pipelines):
    """A row whose definition this process has was archived by another process that lacked it."""
    row = Pipeline.objects.get(name="t-single")
    Pipeline.objects.filter(id=row.id).update(archived_by="elsewhere", archived_at=Now())
    response = alice.post(f"/dashboard/pipelines/{row.id}/run/", {"metadata": ""})
    assert response.status_code == 400
    assert "Not queued: 0 runs queued; 1 skipped because it is archived." in (
        response.content.decode()
    )
    assert not Run.objects.exists()


def test_a_viewer_sees_archived_pipelines_but_may_not_archive(viewer, gone):
    page = viewer.get("/dashboard/pipelines/").content.decode()
    assert card(gone) in page and "/archived/" not in page  # no buttons
    before = AuditEvent.objects.count()
    assert (
        viewer.post(f"/dashboard/pipelines/{gone.id}/archived/", {"archived": "1"}).status_code
        == 403
    )
    assert not Pipeline.objects.get(id=gone.id).is_archived
    pipeline_archive(gone, actor=ALICE)
    listed = viewer.get("/dashboard/pipelines/?archived=1").content.decode()
    assert card(gone) in listed and 'name="unarchive"' not in listed
    assert AuditEvent.objects.count() == before + 1  # alice's archive only


def test_the_overview_leaves_an_archived_pipeline_out(alice, gone):
    from runs.pausing import pipeline_pause

    pipeline_pause(gone, actor=ALICE)
    assert ">scratch</a> paused by alice" in alice.get("/dashboard/").content.decode()
    pipeline_archive(gone, actor=ALICE)
    assert ">scratch</a>" not in alice.get("/dashboard/").content.decode()


# -- admin ----------------------------------------------------------------------------------


def test_the_admin_action_asks_first_then_archives_and_unarchives(alice, gone):
    row = Pipeline.objects.get(name="t-single")
    changelist = "/admin/pipelines/pipeline/"
    selected = {"action": "archive_selected", "_selected_action": [gone.id, row.id]}
    asked = alice.post(changelist, selected)
    assert asked.status_code == 200 and "Archive these pipelines?" in asked.content.decode()
    assert not Pipeline.objects.filter(archived_at__isnull=False).exists()
    response = alice.post(changelist, {**selected, "confirmed": "yes"}, follow=True)
    assert (
        "1 pipeline archived; 1 skipped because its definition is still in code "
        "(disable it instead)." in messages_of(response)
    )
    assert list(Pipeline.objects.archived().values_list("name", flat=True)) == ["scratch"]
    filtered = alice.get(changelist, {"archived": "yes"}).content.decode()
    assert "scratch" in filtered and "t-single-" not in filtered
    response = alice.post(
        changelist, {"action": "unarchive_selected", "_selected_action": [gone.id]}, follow=True
    )
    assert "1 pipeline unarchived." in messages_of(response)
    assert audit("pipeline.archived") == [("admin", "alice", str(gone.id))]
    assert audit("pipeline.unarchived") == [("admin", "alice", str(gone.id))]
