"""Pausing and resuming over the API: /api/queues and /api/pipelines/{id}/pause|resume, by
role, audited, with bad input refused; /api/worker/health names what a pause holds."""

from __future__ import annotations

import pytest

from orbit.core.models import AuditEvent
from pipelines.models import Pipeline
from runs import enqueue
from runs.models import QueuePause
from runs.pausing import pipeline_pause, queue_pause
from tests.api.conftest import pipeline_id


def test_an_operator_pauses_and_resumes_a_queue(alice):
    enqueue("t-single", queue="mail")
    response = alice.post("/api/queues/mail/pause", {"reason": "SMTP down"})
    assert response.status_code == 200
    body = response.json()
    assert (body["queue"], body["pending"], body["paused"]) == ("mail", 1, True)
    assert (body["paused_by"], body["pause_reason"]) == ("alice", "SMTP down")
    listed = {q["queue"]: q for q in alice.get("/api/queues").json()}
    assert listed["mail"]["paused"] is True and listed["mail"]["pending"] == 1
    again = alice.post("/api/queues/mail/pause", {"reason": "other"}).json()
    assert again["pause_reason"] == "SMTP down"  # the first pause stands
    resumed = alice.post("/api/queues/mail/resume")
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    assert list(
        AuditEvent.objects.order_by("id").values_list("action", "source", "actor", "target_id")
    )[-2:] == [
        ("queue.paused", "api", "alice", "mail"),
        ("queue.resumed", "api", "alice", "mail"),
    ]


def test_an_operator_pauses_and_resumes_a_pipeline(alice):
    pid = pipeline_id("t-single")
    response = alice.post(f"/api/pipelines/{pid}/pause", {"reason": "vendor outage"})
    assert response.status_code == 200
    body = response.json()
    assert (body["paused"], body["paused_by"], body["pause_reason"]) == (
        True,
        "alice",
        "vendor outage",
    )
    assert body["paused_at"] is not None
    # Paused, not disabled: new runs are still accepted (and wait).
    created = alice.post(f"/api/pipelines/{pid}/runs", {})
    assert created.status_code == 201 and created.json()["status"] == "pending"
    resumed = alice.post(f"/api/pipelines/{pid}/resume").json()
    assert (resumed["paused"], resumed["paused_by"], resumed["paused_at"]) == (False, "", None)
    assert list(
        AuditEvent.objects.filter(action__startswith="pipeline.")
        .order_by("id")
        .values_list("action", "actor")
    ) == [("pipeline.paused", "alice"), ("pipeline.resumed", "alice")]


@pytest.mark.parametrize(
    "path",
    [
        "/api/queues/mail/pause",
        "/api/queues/mail/resume",
        "/api/pipelines/{pid}/pause",
        "/api/pipelines/{pid}/resume",
    ],
)
def test_a_viewer_may_not_pause_or_resume(viewer, path):
    queue_pause("mail")
    pipeline_pause(Pipeline.objects.get(name="t-single"))
    before = AuditEvent.objects.count()
    response = viewer.post(path.format(pid=pipeline_id("t-single")), {"reason": "no"})
    assert response.status_code == 403
    assert QueuePause.objects.get().paused_by == "code"  # unchanged
    assert Pipeline.objects.get(name="t-single").paused_by == "code"
    assert AuditEvent.objects.count() == before


def test_a_viewer_may_list_queues(viewer):
    enqueue("t-single")
    assert viewer.get("/api/queues").json()[0]["queue"] == "default"


@pytest.mark.parametrize(
    ("path", "body", "status", "detail"),
    [
        # a queue name the naming rule refuses
        ("/api/queues/-bad/pause", {}, 422, "Queue name '-bad' is invalid"),
        # a NUL byte in the queue name
        ("/api/queues/a%00b/pause", {}, 422, "Queue name 'a\\x00b' is invalid"),
        # a NUL byte in the reason
        ("/api/queues/mail/pause", {"reason": "a\x00b"}, 422, "reason cannot hold a NUL"),
        # an unknown pipeline
        ("/api/pipelines/424242/pause", {}, 404, "No pipeline with id 424242"),
        # a field the body does not have
        ("/api/queues/mail/pause", {"why": "x"}, 422, ""),
    ],
)
def test_bad_input_is_a_clear_4xx_and_changes_nothing(alice, path, body, status, detail):
    response = alice.post(path, body)
    assert response.status_code == status, response.content
    assert detail in str(response.json()["detail"])
    assert not QueuePause.objects.exists()
    assert not AuditEvent.objects.filter(action__endswith=".paused").exists()


def test_worker_health_names_the_pauses_holding_runs(alice):
    enqueue("t-single", queue="mail")
    enqueue("t-single", queue="mail")
    alice.post("/api/queues/mail/pause", {"reason": "SMTP down"})
    body = alice.get("/api/worker/health").json()
    assert [(p["kind"], p["name"], p["pending"]) for p in body["paused"]] == [("queue", "mail", 2)]
    assert body["paused"][0]["pause"]["paused_by"] == "alice"
    assert "queue 'mail' paused by alice: 2 pending runs wait" in body["reason"]
