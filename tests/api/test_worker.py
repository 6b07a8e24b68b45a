from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models.functions import Now
from django.utils import timezone

from runs import enqueue
from runs.models import Run, RunStatus
from tests.factories import WorkerFactory

pytestmark = pytest.mark.django_db


def test_stats(viewer_api):
    enqueue("t-single")
    done = enqueue("t-single")
    Run.objects.filter(id=done.id).update(
        status=RunStatus.SUCCEEDED,
        started_at=timezone.now() - timedelta(seconds=2),
        finished_at=Now(),
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
