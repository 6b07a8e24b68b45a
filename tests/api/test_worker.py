from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models.functions import Now
from django.utils import timezone

from orbit.core.models import AuditAction, AuditEvent
from runs import enqueue
from runs.models import Run, RunStatus, Worker
from tests.factories import WorkerFactory

pytestmark = pytest.mark.django_db


def test_stats(viewer_api):
    enqueue("t-single")
    done = enqueue("t-single")
    Run.objects.filter(id=done.id).update(
        status=RunStatus.SUCCEEDED,
        started_at=timezone.now() - timedelta(seconds=2),
        finished_at=Now(),
        running_time=2.0,
    )
    response = viewer_api.get("/api/worker/stats")
    assert response.status_code == 200
    body = response.json()
    assert (body["pending"], body["queue_depth"], body["running"]) == (1, 1, 0)
    assert body["last_hour"]["succeeded"] == 1
    assert body["last_hour"]["success_rate"] == 1.0
    assert body["last_hour"]["duration_p50"] == pytest.approx(2.0, abs=0.5)
    assert body["last_day"]["window"] == "1d"


def test_recent_runs_newest_first_with_status_and_limit(viewer_api):
    runs = [enqueue("t-single") for _ in range(3)]
    Run.objects.filter(id=runs[0].id).update(status=RunStatus.FAILED, finished_at=Now())
    latest = viewer_api.get("/api/worker/recent-runs", {"limit": 2}).json()
    assert [r["id"] for r in latest] == [str(runs[2].id), str(runs[1].id)]
    failed = viewer_api.get("/api/worker/recent-runs", {"status": "failed"}).json()
    assert [r["id"] for r in failed] == [str(runs[0].id)]


def test_health_lists_workers_and_says_why(viewer_api):
    WorkerFactory(name="web-1:10", hostname="web-1", pid=10, state="running", concurrency=4)
    body = viewer_api.get("/api/worker/health").json()
    assert (body["status"], body["reason"], body["alive"]) == ("healthy", "1 worker alive", 1)
    [worker] = body["workers"]
    assert (worker["hostname"], worker["pid"], worker["state"], worker["current_runs"]) == (
        "web-1",
        10,
        "running",
        0,
    )
    assert worker["heartbeat_age"] < 30


def test_health_down_without_workers(viewer_api):
    body = viewer_api.get("/api/worker/health").json()
    assert (body["status"], body["workers"]) == ("down", [])


def test_metrics_series(viewer_api):
    done = enqueue("t-three")
    Run.objects.filter(id=done.id).update(
        status=RunStatus.FAILED, started_at=Now(), finished_at=Now()
    )
    body = viewer_api.get("/api/worker/metrics").json()
    assert len(body["runs_per_minute"]) == 60
    assert sum(m["failed"] for m in body["runs_per_minute"]) == 1
    [three] = [p for p in body["pipelines"] if p["pipeline"] == "t-three"]
    assert (three["failed"], three["success_rate"]) == (1, 0.0)
    assert body["step_failure_rates"] == []


@pytest.mark.parametrize(
    "path",
    ["/api/worker/stats", "/api/worker/recent-runs", "/api/worker/health", "/api/worker/metrics"],
)
def test_worker_endpoints_need_authentication(anonymous_api, path):
    response = anonymous_api.get(path)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="orbit"'


def test_recent_runs_limit_is_bounded(viewer_api):
    response = viewer_api.get("/api/worker/recent-runs", {"limit": 500})
    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "field": "limit",
        "message": "Input should be less than or equal to 200",
    }


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def test_runs_no_live_worker_defines_wait_and_say_for_which(viewer_api):
    """A rolling deploy: the only live worker has the old code, without t-three."""
    WorkerFactory(state="running", queues=["default"], definitions={"t-single": ["noop"]})
    enqueue("t-three")
    enqueue("t-three")
    enqueue("t-single")  # this one a live worker can run
    body = viewer_api.get("/api/worker/health").json()
    assert body["status"] == "degraded"
    assert body["reason"] == "2 runs waiting for a worker that defines 't-three'"
    assert body["waiting"] == [
        {
            "definition": "t-three",
            "queue": "default",
            "runs": 2,
            "steps": [],
            "reason": "2 runs waiting for a worker that defines 't-three'",
        }
    ]


def test_runs_with_a_step_no_live_worker_defines_wait_too(viewer_api):
    """Created by a newer definition (with the step 'three'), for an older worker."""
    WorkerFactory(state="running", queues=["default"], definitions={"t-three": ["one", "two"]})
    enqueue("t-three")
    body = viewer_api.get("/api/worker/health").json()
    assert body["reason"] == (
        "1 run waiting for a worker that defines 't-three' with the step 'three'"
    )
    assert body["waiting"][0]["steps"] == ["three"]


def test_no_runs_wait_once_a_live_worker_defines_them(viewer_api):
    WorkerFactory(state="running", queues=["default"], definitions={"t-single": ["noop"]})
    WorkerFactory(
        state="running", queues=["default"], definitions={"t-three": ["one", "two", "three"]}
    )
    enqueue("t-three")
    body = viewer_api.get("/api/worker/health").json()
    assert (body["status"], body["waiting"]) == ("healthy", [])


def test_a_death_degrades_health_for_a_while_then_it_is_healthy_by_itself(viewer_api, settings):
    settings.ORBIT_DEAD_WORKER_WINDOW = 900
    WorkerFactory(name="alive:1", state="running")
    dead = WorkerFactory(name="dead:2", state="running")
    Worker.objects.filter(id=dead.id).update(last_heartbeat=ago(120))
    body = viewer_api.get("/api/worker/health").json()
    assert (body["status"], body["dead"], body["dead_total"]) == ("degraded", 1, 1)
    assert body["reason"] == "1 worker died in the last 15 min (dead:2)"
    listed = {w["name"]: w for w in body["workers"]}
    assert listed["dead:2"]["dead"] and not listed["dead:2"]["alive"]
    assert listed["dead:2"]["died_at"] is not None
    Worker.objects.filter(id=dead.id).update(last_heartbeat=ago(1000))  # 16 min later
    body = viewer_api.get("/api/worker/health").json()
    assert (body["status"], body["reason"], body["dead"], body["dead_total"]) == (
        "healthy",
        "1 worker alive",
        0,
        1,
    )


def test_a_dead_worker_is_forgotten_once_and_audited(operator_api):
    dead = WorkerFactory(name="dead:2", state="running")
    Worker.objects.filter(id=dead.id).update(last_heartbeat=ago(120))
    response = operator_api.post(f"/api/worker/workers/{dead.id}/forget")
    assert response.status_code == 200
    assert response.json()["name"] == "dead:2"
    body = operator_api.get("/api/worker/health").json()
    assert (body["dead_total"], [w["name"] for w in body["workers"]]) == (0, [])
    (event,) = AuditEvent.objects.filter(action=AuditAction.WORKER_FORGOTTEN)
    assert (event.target_id, event.actor) == (str(dead.id), "operator")


def test_a_live_worker_cannot_be_forgotten(operator_api):
    alive = WorkerFactory(name="alive:1", state="running")
    response = operator_api.post(f"/api/worker/workers/{alive.id}/forget")
    assert response.status_code == 409
    assert response.json()["detail"].startswith("Worker alive:1 is alive (its last heartbeat was")
    assert operator_api.post("/api/worker/workers/987654/forget").status_code == 404


def test_a_viewer_cannot_forget_a_worker(viewer_api):
    dead = WorkerFactory(state="running")
    assert viewer_api.post(f"/api/worker/workers/{dead.id}/forget").status_code == 403
