from __future__ import annotations

import re

import pytest
from django.db.models.functions import Now

from orbit.core.exceptions import InvalidTransition
from runs import enqueue
from runs.foreground import resume
from runs.lifecycle import run_cancel
from runs.models import AttemptOutcome, Run, RunStatus, Step, StepAttempt, StepStatus
from runs.recovery import find_interrupted, recover_interrupted, recover_run
from runs.store import store
from runs.store.records import ClaimRequest
from tests.factories import WorkerFactory

pytestmark = pytest.mark.django_db(transaction=True)


def interrupt(run: Run, step: str = "two", worker=None) -> Run:
    """Make `run` look like its worker died in the middle of `step`."""
    Run.objects.filter(id=run.id).update(
        status=RunStatus.RUNNING,
        fence=1,
        current_step=step,
        worker=worker,
        lease_expires_at="2000-01-01T00:00:00Z",
        started_at=Now(),
    )
    Step.objects.filter(run=run, position__lt=Step.objects.get(run=run, name=step).position).update(
        status=StepStatus.SUCCEEDED, result={"done": True}
    )
    Step.objects.filter(run=run, name=step).update(status=StepStatus.RUNNING, started_at=Now())
    run.refresh_from_db()
    return run


def test_find_interrupted_says_why(test_pipelines):
    worker = WorkerFactory(
        name="host-a:42:beef", last_heartbeat="2000-01-01T00:00:00Z", state="running"
    )
    run = interrupt(enqueue("t-three"), worker=worker)
    [found] = find_interrupted()
    assert (found.run_id, found.pipeline, found.step, found.worker) == (
        run.id,
        "t-three",
        "two",
        "host-a:42:beef",
    )
    assert found.reason.endswith("worker host-a:42:beef stopped sending heartbeats (dead)")
    assert found.expired_seconds_ago > 3600


def test_a_live_lease_is_not_interrupted(test_pipelines):
    enqueue("t-three")
    store().claim(ClaimRequest(worker_id=None, limit=1, queues=("default",), lease_seconds=30))
    assert find_interrupted() == []
    assert recover_interrupted(auto_resume=True).recovered == []


def test_report_only_changes_nothing(test_pipelines):
    run = interrupt(enqueue("t-three"))
    report = recover_interrupted(auto_resume=False)
    assert [r.run_id for r in report.interrupted] == [run.id]
    assert Run.objects.get(id=run.id).status == RunStatus.RUNNING


def test_recovery_requeues_and_records_the_interrupted_attempt(test_pipelines):
    run = interrupt(enqueue("t-three"))
    report = recover_interrupted(auto_resume=True)
    assert report.recovered == [run.id]
    run.refresh_from_db()
    assert (run.status, run.interruptions, run.worker_id, run.lease_expires_at) == (
        "pending",
        1,
        None,
        None,
    )
    two = run.steps.get(name="two")
    assert (two.status, two.attempts, two.failures) == ("pending", 1, 0)
    assert two.attempt_records.get().outcome == AttemptOutcome.INTERRUPTED


def test_recovered_run_resumes_at_its_first_unfinished_step(test_pipelines):
    run = interrupt(enqueue("t-dataflow", metadata={"x": 1, "y": 2}), step="double")
    Step.objects.filter(run=run, name="add").update(result={"value": 21})
    result = resume(run.id)
    assert result.success
    # prev_results came from the database: 21 * 2, not (1 + 2) * 2
    assert result.results == {"add": {"value": 21}, "double": {"value": 42}}
    assert not StepAttempt.objects.filter(run=run, step__name="add").exists()


def test_too_many_interruptions_quarantine_the_run(test_pipelines, settings):
    settings.ORBIT_MAX_INTERRUPTIONS = 1
    run = enqueue("t-three")
    interrupt(run)
    recover_interrupted(auto_resume=True)
    interrupt(run)
    report = recover_interrupted(auto_resume=True)
    assert report.quarantined == [run.id]
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error == (
        "Quarantined: the run interrupted its worker 2 times, last in step 'two' (ORBIT_MAX_INTERRUPTIONS=1)"
    )


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        # a live lease: some worker is on it
        (
            lambda run: store().claim(
                ClaimRequest(worker_id=None, limit=1, queues=("default",), lease_seconds=30)
            ),
            "is running on a foreground process and its lease is live",
        ),
        # finished runs cannot be resumed
        (
            lambda run: run_cancel(run.id),
            "already finished: it cancelled (use retry for a failed or cancelled run)",
        ),
    ],
)
def test_resume_refuses_with_a_reason(test_pipelines, prepare, message):
    run = enqueue("t-three")
    prepare(run)
    with pytest.raises(InvalidTransition, match=re.escape(message)):
        recover_run(run.id)
    with pytest.raises(InvalidTransition, match=re.escape(message)):
        resume(run.id)


def test_retry_resumes_at_the_failed_step_with_a_fresh_budget(test_pipelines):
    from runs.foreground import ForegroundRunner
    from runs.lifecycle import run_retry

    result = ForegroundRunner("t-failing").execute()
    assert not result.success
    run = run_retry(result.run_id)
    assert run.status == RunStatus.PENDING
    step = run.steps.get()
    assert (step.status, step.failures, step.attempts) == ("pending", 0, 2)
    assert StepAttempt.objects.filter(run=run).count() == 2  # history kept
