"""A rolling deploy with real worker processes: old workers (tests/deploy_v1.py) and new
ones (tests/deploy_v2.py) share one database. A worker claims only runs it can execute, so
runs of the new pipeline, and runs the new definition laid out with a step the old code
lacks, wait untouched for a new worker; none fails, none is claimed by an old worker."""

from __future__ import annotations

import importlib
import signal
from collections.abc import Iterator

import pytest

from pipelines.definition import registry
from pipelines.sync import sync_pipelines
from runs import enqueue, metrics
from runs.models import Run, RunStatus, Step, StepAttempt, Worker
from tests.processes import stays_true, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FAST = {"ORBIT_POLL_INTERVAL": "0.1"}


@pytest.fixture
def new_code() -> Iterator[None]:
    """This (test) process has the new code, as the web processes of a deploy would."""
    importlib.import_module("tests.deploy_v2")
    sync_pipelines()
    yield
    for name in ("t-deploy", "t-deploy-new"):
        registry.unregister(name)


def old_run() -> Run:
    """A run the old code laid out: t-deploy without its step "notify"."""
    run = enqueue("t-deploy")
    Step.objects.filter(run=run, name="notify").delete()
    return run


def test_old_workers_leave_new_runs_to_new_workers(new_code, workers):
    old = workers("--no-schedules", env={**FAST, "ORBIT_PIPELINE_MODULES": "tests.deploy_v1"})
    old_row = wait_until(lambda: Worker.objects.filter(pid=old.pid, state="running").first())
    assert "t-deploy" in old_row.definitions and "t-deploy-new" not in old_row.definitions
    before = [old_run() for _ in range(3)]
    newer = [enqueue("t-deploy") for _ in range(3)]  # with the step the old code lacks
    brand_new = [enqueue("t-deploy-new") for _ in range(3)]
    waiting = newer + brand_new

    wait_until(
        lambda: Run.objects.filter(id__in=[r.id for r in before], status="succeeded").count() == 3,
        message="the old worker to run the runs its code can run",
    )
    stays_true(
        lambda: (
            Run.objects.filter(id__in=[r.id for r in waiting], status="pending", fence=0).count()
            == 6
        ),
        seconds=1.5,
        message="the runs the old worker cannot run stay pending and unclaimed",
    )
    assert {(w.definition, w.runs, w.steps) for w in metrics.waiting_runs()} == {
        ("t-deploy-new", 3, ()),
        ("t-deploy", 3, ("notify",)),
    }

    new = workers("--no-schedules", env={**FAST, "ORBIT_PIPELINE_MODULES": "tests.deploy_v2"})
    new_row = wait_until(lambda: Worker.objects.filter(pid=new.pid, state="running").first())
    wait_until(
        lambda: Run.objects.filter(status="succeeded").count() == 9,
        timeout=30,
        message="every run to succeed",
    )
    assert not Run.objects.exclude(status=RunStatus.SUCCEEDED).exists()
    ids = [r.id for r in waiting]
    assert set(Run.objects.filter(id__in=ids).values_list("fence", flat=True)) == {1}
    assert set(Run.objects.filter(id__in=ids).values_list("worker_id", flat=True)) == {new_row.id}
    assert set(StepAttempt.objects.filter(run_id__in=ids).values_list("worker_id", flat=True)) == {
        new_row.id
    }
    assert set(StepAttempt.objects.values_list("outcome", flat=True)) == {"succeeded"}
    assert metrics.waiting_runs() == []
    for process in (old, new):
        process.send(signal.SIGTERM)
        assert process.wait(10) == 0
    assert "handed back" not in old.log()
