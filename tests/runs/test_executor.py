from __future__ import annotations

import time

import pytest

from runs.foreground import ForegroundRunner
from runs.models import AttemptOutcome, Run, RunStatus, StepAttempt, StepLog

pytestmark = pytest.mark.django_db(transaction=True)


def test_dataflow_passes_results_to_later_steps(test_pipelines):
    result = ForegroundRunner("t-dataflow").execute(metadata={"x": 2, "y": 3})
    assert result.success
    assert result.results == {"add": {"value": 5}, "double": {"value": 10}}
    run = Run.objects.get(id=result.run_id)
    assert run.status == RunStatus.SUCCEEDED
    assert [s.status for s in run.steps.all()] == ["succeeded", "succeeded"]


def test_flaky_step_records_three_attempts_with_growing_delays(test_pipelines):
    result = ForegroundRunner("t-flaky").execute(metadata={"fail_times": 2})
    assert result.success
    attempts = list(
        StepAttempt.objects.filter(run_id=result.run_id, step__name="flaky").order_by("number")
    )
    assert [a.outcome for a in attempts] == ["failed", "failed", "succeeded"]
    assert attempts[0].error == "flaky failure on attempt 1"
    # Full jitter within growing ceilings: 0.05 then 0.1 (base 0.05, factor 2)
    assert 0.005 <= attempts[0].backoff_delay <= 0.05
    assert 0.01 <= attempts[1].backoff_delay <= 0.1
    assert attempts[2].backoff_delay is None


def test_timeout_stops_the_step_within_a_second_and_retries(test_pipelines):
    started = time.monotonic()
    result = ForegroundRunner("t-slow-once").execute(metadata={"seconds": 30})
    assert time.monotonic() - started < 4
    assert result.success
    attempts = list(StepAttempt.objects.filter(run_id=result.run_id).order_by("number"))
    assert [a.outcome for a in attempts] == [AttemptOutcome.TIMED_OUT, AttemptOutcome.SUCCEEDED]
    assert attempts[0].error == "Step 'sleeps-once' ran past its 1 s timeout and was stopped"
    assert attempts[0].duration < 2.0


@pytest.mark.parametrize(
    ("pipeline", "error"),
    [
        # a child that exits hard is a crashed attempt
        (
            "t-crash",
            "Step 'crashes' failed after 2 attempts: The process running step 'crashes' exited with code 13",
        ),
        # SystemExit raised by step code is the step's failure, not the caller's
        ("t-system-exit", "Step 'exits' failed after 1 attempt: Step 'exits' raised SystemExit(3)"),
        (
            "t-unserialisable",
            "Step 'bad' failed after 1 attempt: Step 'bad' returned a result that is not JSON-serialisable: Object of type object is not JSON serializable",
        ),
        (
            "t-oversized",
            "Step 'big' failed after 1 attempt: Step 'big' returned a result of 2097164 bytes; the limit is 1048576 bytes (ORBIT_MAX_RESULT_BYTES)",
        ),
        (
            "t-permanent",
            "Step 'permanent' failed and cannot be retried: bad input: nothing to retry",
        ),
        ("t-failed-result", "Step 'says-no' failed after 1 attempt: the service said no"),
    ],
)
def test_failures_fail_the_run_with_a_clear_error(test_pipelines, pipeline, error):
    result = ForegroundRunner(pipeline).execute()
    assert not result.success
    assert result.error == error
    assert Run.objects.get(id=result.run_id).status == RunStatus.FAILED


def test_step_logs_are_kept_with_structured_fields(test_pipelines):
    result = ForegroundRunner("t-logs").execute()
    lines = StepLog.objects.filter(run_id=result.run_id).order_by("attempt", "sequence")
    assert [(r.attempt, r.sequence, r.level, r.message, r.fields) for r in lines] == [
        (1, 0, "INFO", "hello world", {"items": 3}),
        (1, 1, "WARNING", "careful", {}),
    ]
