from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db.models.functions import Now
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from runs import enqueue
from runs.models import Run, RunStatus
from tests.factories import StepAttemptFactory, WorkerFactory

pytestmark = pytest.mark.django_db

TOKEN = "prometheus-scrape-token"


@pytest.fixture
def scrape(settings):
    settings.ORBIT_METRICS_TOKEN = TOKEN

    def get(**headers):
        return Client().get("/metrics", headers=headers or {"Authorization": f"Bearer {TOKEN}"})

    return get


def samples(response) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_from_the_database(scrape, test_pipelines):
    enqueue("t-single")
    done = enqueue("t-three")
    Run.objects.filter(id=done.id).update(
        status=RunStatus.SUCCEEDED,
        started_at=timezone.now() - timedelta(seconds=30),
        finished_at=Now(),
        running_time=3.0,  # what the histogram counts, not the 30 s since it started
    )
    StepAttemptFactory(step=done.steps.get(name="one"), number=1, outcome="failed", duration=0.2)
    StepAttemptFactory(step=done.steps.get(name="one"), number=2, outcome="succeeded", duration=0.3)
    WorkerFactory(state="running")
    response = scrape()
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    found = samples(response)
    assert found[("orbit_runs", (("status", "pending"),))] == 1
    assert found[("orbit_queue_depth", ())] == 1
    assert found[("orbit_workers", (("state", "alive"),))] == 1
    assert found[("orbit_runs_finished_total", (("status", "succeeded"),))] == 1
    assert found[("orbit_step_attempts_total", (("outcome", "failed"),))] == 1
    assert found[("orbit_step_retries_total", ())] == 1
    assert found[("orbit_run_duration_seconds_bucket", (("le", "5.0"),))] == 1
    assert found[("orbit_run_duration_seconds_bucket", (("le", "2.5"),))] == 0
    assert found[("orbit_run_duration_seconds_count", ())] == 1
    assert found[("orbit_step_attempt_duration_seconds_count", ())] == 2


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),  # anonymous
        ({"Authorization": "Bearer wrong"}, 401),  # wrong token
        ({"Authorization": "Basic dTpw"}, 401),  # another scheme
        ({"Authorization": "Bearer t\u00f6ken"}, 401),  # non-ASCII (Latin-1, as HTTP sends it)
        ({"Authorization": "Bearer \u2603"}, 401),  # not even Latin-1
    ],
)
def test_metrics_refuse_without_the_token(scrape, headers, status):
    response = Client().get("/metrics", headers=headers)
    assert response.status_code == status
    assert b"orbit_runs" not in response.content


def test_no_token_configured_means_no_bearer_access(settings):
    settings.ORBIT_METRICS_TOKEN = ""
    assert Client().get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401


def test_staff_session_may_read_metrics(db):
    client = Client()
    client.force_login(User.objects.create_user("ops", is_staff=True))
    assert client.get("/metrics").status_code == 200
    plain = Client()
    plain.force_login(User.objects.create_user("someone"))
    assert plain.get("/metrics").status_code == 403


def test_pruning_leaves_the_days_counters_and_histograms_as_they_were(scrape, test_pipelines):
    """Runs finished today and pruned (retention under a day) count from the rollups."""
    from pipelines.models import Pipeline
    from runs.metrics import start_of_day
    from runs.retention import Policy, prune
    from tests.factories import StepFactory

    now = timezone.now()
    if now - start_of_day(now) < timedelta(hours=2, minutes=5):
        pytest.skip("the UTC day is too young to hold runs older than an hour and a bit")
    pipeline = Pipeline.objects.get(name="t-single")
    for i, status in enumerate(["succeeded", "failed", "succeeded"]):
        end = now - timedelta(hours=2, seconds=i)
        run = Run.objects.create(
            pipeline=pipeline,
            status=status,
            started_at=end - timedelta(seconds=3 + i),
            finished_at=end,
        )
        step = StepFactory(run=run, name="s", position=0)
        StepAttemptFactory(step=step, number=1, outcome="failed", duration=1.0)
        StepAttemptFactory(step=step, number=2, outcome=status, duration=2.0)
    before = {k: v for k, v in samples(scrape()).items() if not k[0].endswith("_created")}
    assert prune(Policy(succeeded=timedelta(hours=1), failed=timedelta(hours=1))).total_runs == 3
    after = {k: v for k, v in samples(scrape()).items() if not k[0].endswith("_created")}
    assert after == before
    assert before[("orbit_step_retries_total", ())] == 3
    assert before[("orbit_runs_finished_total", (("status", "succeeded"),))] == 2


def test_finished_runs_per_pipeline_and_quarantines(scrape, test_pipelines):
    """What the alert rules (docs/alerts.yml) read: outcomes per pipeline, quarantines."""
    from runs.store.portable import quarantine_error

    def finish(pipeline: str, status: str, error: str = "") -> None:
        run = enqueue(pipeline)
        Run.objects.filter(id=run.id).update(status=status, finished_at=Now(), error=error)

    finish("t-single", "succeeded")
    finish("t-single", "failed", "Step 'noop' failed after 1 attempt: boom")
    finish("t-three", "failed", quarantine_error(3, "two", 2))
    finish("t-three", "cancelled")
    found = samples(scrape())

    def per_pipeline(pipeline: str, status: str) -> float:
        key = (("pipeline", pipeline), ("status", status))
        return found[("orbit_pipeline_runs_finished_total", key)]

    assert per_pipeline("t-single", "succeeded") == 1
    assert per_pipeline("t-single", "failed") == 1
    assert per_pipeline("t-three", "failed") == 1
    assert per_pipeline("t-three", "cancelled") == 1
    assert per_pipeline("t-three", "succeeded") == 0
    assert found[("orbit_runs_quarantined_total", ())] == 1
