"""Pausing and resuming from the dashboard (pipeline cards, the Queues page, the overview)
and from the admin, by role, audited, with bad input refused."""

from __future__ import annotations

import pytest

from orbit.core.audit import Actor
from orbit.core.models import AuditEvent, AuditSource
from pipelines.models import Pipeline
from runs import enqueue
from runs.models import QueuePause
from runs.pausing import pipeline_pause, queue_pause
from tests.console.conftest import audit, messages_of

pytestmark = pytest.mark.django_db

ALICE = Actor(source=AuditSource.CLI, name="alice")


# -- dashboard ------------------------------------------------------------------------------


def test_the_pipeline_card_pauses_and_resumes(alice):
    row = Pipeline.objects.get(name="t-single")
    page = alice.get("/dashboard/pipelines/").content.decode()
    assert f'action="/dashboard/pipelines/{row.id}/paused/"' in page and "data-confirm" in page
    response = alice.post(
        f"/dashboard/pipelines/{row.id}/paused/", {"paused": "1", "reason": "vendor"}, follow=True
    )
    assert "Pipeline t-single paused." in messages_of(response)
    assert "paused by alice just now" in response.content.decode()
    assert "Paused: vendor" in response.content.decode()
    again = alice.post(f"/dashboard/pipelines/{row.id}/paused/", {"paused": "1"}, follow=True)
    assert "Pipeline t-single was already paused by alice just now; left as it was." in (
        messages_of(again)
    )
    response = alice.post(f"/dashboard/pipelines/{row.id}/paused/", {"paused": "0"}, follow=True)
    assert "Pipeline t-single resumed." in messages_of(response)
    assert not Pipeline.objects.get(id=row.id).is_paused
    assert audit("pipeline.paused") == [("dashboard", "alice", str(row.id))]
    assert audit("pipeline.resumed") == [("dashboard", "alice", str(row.id))]


def test_the_queues_page_lists_pauses_and_resumes_queues(alice):
    enqueue("t-single", queue="mail")
    enqueue("t-single", queue="mail")
    page = alice.get("/dashboard/queues/")
    assert page.status_code == 200
    assert 'id="queue-mail"' in page.content.decode()
    response = alice.post(
        "/dashboard/queues/paused/", {"queue": "mail", "paused": "1", "reason": "SMTP"}, follow=True
    )
    assert "Queue mail paused." in messages_of(response)
    row = next(r for r in response.context["rows"] if r["state"].queue == "mail")
    assert (row["state"].pending, row["pause_text"]) == (2, "paused by alice just now")
    # A queue with no runs yet may be paused ahead of them.
    alice.post("/dashboard/queues/paused/", {"queue": "later", "paused": "1"})
    response = alice.post(
        "/dashboard/queues/paused/", {"queue": "mail", "paused": "0"}, follow=True
    )
    assert "Queue mail resumed." in messages_of(response)
    assert list(QueuePause.objects.values_list("queue", flat=True)) == ["later"]
    assert audit("queue.paused") == [
        ("dashboard", "alice", "mail"),
        ("dashboard", "alice", "later"),
    ]
    assert audit("queue.resumed") == [("dashboard", "alice", "mail")]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        # a queue name the naming rule refuses
        ({"queue": "no spaces", "paused": "1"}, "Queue name &#x27;no spaces&#x27; is invalid"),
        # a NUL byte in the name
        ({"queue": "a\x00b", "paused": "1"}, "is invalid"),
        # a NUL byte in the reason
        ({"queue": "mail", "paused": "1", "reason": "a\x00b"}, "reason cannot hold a NUL"),
        # no name at all
        ({"paused": "1"}, "Queue name &#x27;&#x27; is invalid"),
    ],
)
def test_bad_queue_input_is_a_400_and_changes_nothing(alice, form, message):
    response = alice.post("/dashboard/queues/paused/", form)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not QueuePause.objects.exists()
    assert not AuditEvent.objects.exists()


def test_a_bad_pipeline_reason_is_a_400_and_an_unknown_pipeline_a_404(alice):
    row = Pipeline.objects.get(name="t-single")
    response = alice.post(
        f"/dashboard/pipelines/{row.id}/paused/", {"paused": "1", "reason": "x" * 501}
    )
    assert response.status_code == 400
    assert "reason is longer than 500 characters" in response.content.decode()
    assert alice.post("/dashboard/pipelines/424242/paused/", {"paused": "1"}).status_code == 404
    assert not Pipeline.objects.filter(paused_at__isnull=False).exists()


def test_a_viewer_sees_pauses_but_may_not_pause_or_resume(viewer):
    row = Pipeline.objects.get(name="t-single")
    pipeline_pause(row, reason="vendor", actor=ALICE)
    queue_pause("mail", actor=ALICE)
    page = viewer.get("/dashboard/pipelines/").content.decode()
    assert "paused by alice" in page and "/paused/" not in page  # no buttons
    queues = viewer.get("/dashboard/queues/").content.decode()
    assert "paused by alice" in queues and 'name="paused"' not in queues
    before = AuditEvent.objects.count()
    assert viewer.post(f"/dashboard/pipelines/{row.id}/paused/", {"paused": "0"}).status_code == 403
    assert (
        viewer.post("/dashboard/queues/paused/", {"queue": "mail", "paused": "0"}).status_code
        == 403
    )
    assert (
        viewer.post("/dashboard/queues/paused/", {"queue": "x", "paused": "1"}).status_code == 403
    )
    assert Pipeline.objects.get(id=row.id).is_paused and QueuePause.objects.count() == 1
    assert AuditEvent.objects.count() == before


def test_the_overview_says_what_a_pause_holds(alice):
    enqueue("t-single", queue="mail")
    queue_pause("mail", reason="SMTP down", actor=ALICE)
    page = alice.get("/dashboard/").content.decode()
    assert "paused by alice just now (SMTP down): 1 pending run waits" in page


# -- admin ----------------------------------------------------------------------------------


def test_admin_actions_pause_and_resume_pipelines(alice):
    row = Pipeline.objects.get(name="t-single")
    changelist = "/admin/pipelines/pipeline/"
    response = alice.post(
        changelist, {"action": "pause_selected", "_selected_action": [row.id]}, follow=True
    )
    assert "1 pipeline paused." in messages_of(response)
    assert Pipeline.objects.get(id=row.id).paused_by == "alice"
    response = alice.post(
        changelist, {"action": "pause_selected", "_selected_action": [row.id]}, follow=True
    )
    assert "0 pipelines paused; 1 skipped because it was already paused." in messages_of(response)
    response = alice.post(
        changelist, {"action": "resume_selected", "_selected_action": [row.id]}, follow=True
    )
    assert "1 pipeline resumed." in messages_of(response)
    assert audit("pipeline.paused") == [("admin", "alice", str(row.id))]
    assert audit("pipeline.resumed") == [("admin", "alice", str(row.id))]


def test_admin_lists_adds_edits_and_deletes_queue_pauses(alice):
    listing = alice.get("/admin/runs/queuepause/")
    assert listing.status_code == 200
    response = alice.post(
        "/admin/runs/queuepause/add/", {"queue": "mail", "reason": "SMTP"}, follow=True
    )
    assert response.status_code == 200
    row = QueuePause.objects.get()
    assert (row.queue, row.paused_by, row.reason) == ("mail", "alice", "SMTP")
    response = alice.post(
        "/admin/runs/queuepause/mail/change/", {"queue": "mail", "reason": "SMTP relay down"}
    )
    assert QueuePause.objects.get().reason == "SMTP relay down"
    response = alice.post("/admin/runs/queuepause/mail/delete/", {"post": "yes"}, follow=True)
    assert not QueuePause.objects.exists()
    assert audit("queue.paused") == [("admin", "alice", "mail")]
    assert audit("queue.resumed") == [("admin", "alice", "mail")]


def test_admin_refuses_a_bad_queue_name(alice):
    response = alice.post("/admin/runs/queuepause/add/", {"queue": "no spaces", "reason": ""})
    assert response.status_code == 200  # the form again, with the error
    assert "Queue name &#x27;no spaces&#x27; is invalid" in response.content.decode()
    assert not QueuePause.objects.exists()


def test_a_viewer_may_see_but_not_change_queue_pauses_in_the_admin(viewer):
    queue_pause("mail", actor=ALICE)
    assert viewer.get("/admin/runs/queuepause/").status_code == 200
    assert viewer.post("/admin/runs/queuepause/add/", {"queue": "x"}).status_code == 403
    assert viewer.post("/admin/runs/queuepause/mail/delete/", {"post": "yes"}).status_code == 403
    assert QueuePause.objects.count() == 1


def test_a_viewer_cannot_pause_pipelines_through_the_admin(viewer):
    row = Pipeline.objects.get(name="t-single")
    response = viewer.post(
        "/admin/pipelines/pipeline/", {"action": "pause_selected", "_selected_action": [row.id]}
    )
    assert response.status_code in (200, 302, 403)
    assert not Pipeline.objects.get(id=row.id).is_paused
    assert not AuditEvent.objects.filter(action="pipeline.paused").exists()
