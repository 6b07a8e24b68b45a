"""A task function in the API: a pipeline like any other, named by its path,
its arguments the run's input, masked like any input."""

from __future__ import annotations

import pytest

from runs.models import Run, RunStatus
from tests import tasks_for_tests as t

pytestmark = pytest.mark.django_db


def test_a_task_is_listed_as_a_pipeline_with_its_step(viewer_api):
    t.flaky.enqueue(fail_times=0)  # its row is made on first enqueue
    pipelines = viewer_api.get("/api/pipelines").json()
    flaky = next(p for p in pipelines if p["name"] == "tests.tasks_for_tests.flaky")
    assert flaky["definition"] == "tests.tasks_for_tests.flaky"
    assert flaky["description"] == (
        "Fails its first `fail_times` attempts, then succeeds; Orbit retries it twice."
    )
    retries = 2 if t.OWN_OPTIONS else 0  # @task(max_retries=2) where the decorator takes it
    assert (flaky["in_code"], flaky["steps"]) == (
        True,
        [{"name": "task", "max_retries": retries, "timeout": 300.0}],
    )


def test_a_task_run_shows_its_arguments_as_input_masked(viewer_api):
    result = t.fails.enqueue(password="hunter2")
    body = viewer_api.get(f"/api/runs/{result.id}").json()
    assert body["pipeline"] == "tests.tasks_for_tests.fails"
    assert body["metadata"] == {"args": [], "kwargs": {"password": "[redacted]"}}
    assert Run.objects.get(id=result.id).metadata["kwargs"] == {"password": "hunter2"}


def test_a_task_pipeline_shows_its_runs_and_failure_rate(admin_api):
    ok, bad = t.add.enqueue(1, 2), t.add.enqueue(3, 4)
    Run.objects.filter(id=ok.id).update(status=RunStatus.SUCCEEDED, finished_at=ok.enqueued_at)
    Run.objects.filter(id=bad.id).update(status=RunStatus.FAILED, finished_at=bad.enqueued_at)
    row_id = Run.objects.get(id=ok.id).pipeline_id
    assert admin_api.get(f"/api/pipelines/{row_id}").json()["success_rate"] == 0.5
    runs = admin_api.get("/api/runs", {"pipeline": "tests.tasks_for_tests.add"}).json()
    assert {r["id"] for r in runs["items"]} == {ok.id, bad.id}
