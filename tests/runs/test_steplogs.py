"""Step logs are streamed to the database while the step runs (runs/supervision.py
`LogBuffer`, the worker's `logs` duty, the foreground runner), bounded per attempt, and
what reached the database survives a cancel, a timeout and a killed worker."""

from __future__ import annotations

import signal
from datetime import UTC, datetime

import pytest

from runs import enqueue
from runs.foreground import ForegroundRunner
from runs.lifecycle import run_cancel
from runs.models import AttemptOutcome, Run, RunStatus, StepAttempt, StepLog
from runs.steplogs import run_logs, step_logs
from runs.supervision import TRUNCATED_FIELDS, LogBuffer
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def messages(run_id: object, step: str = "waits") -> list[tuple[int, str]]:
    return list(
        StepLog.objects.filter(run_id=run_id, step__name=step)
        .order_by("attempt", "sequence")
        .values_list("attempt", "message")
    )


def logged(run_id: object, message: str) -> bool:
    return StepLog.objects.filter(run_id=run_id, message=message).exists()


def entry(message: str) -> dict[str, object]:
    return {"time": datetime.now(UTC).isoformat(), "level": "INFO", "message": message}


def test_a_buffer_keeps_the_first_records_then_says_the_rest_were_not_kept():
    buffer = LogBuffer(limit=3)
    for i in range(10):
        buffer.add(entry(f"r{i}"))
    lines = buffer.pending
    assert [(line.sequence, line.message) for line in lines[:3]] == [
        (0, "r0"),
        (1, "r1"),
        (2, "r2"),
    ]
    assert (lines[3].sequence, lines[3].level, lines[3].fields) == (3, "WARNING", TRUNCATED_FIELDS)
    assert lines[3].message == (
        "Log truncated: this attempt logged more than 3 records; the rest are not kept "
        "(ORBIT_MAX_LOG_RECORDS)"
    )
    assert len(lines) == 4
    buffer.written(2)
    assert [line.sequence for line in buffer.pending] == [2, 3]


def test_a_step_that_logs_past_the_bound_keeps_the_first_records_and_a_mark(
    test_pipelines, settings
):
    settings.ORBIT_MAX_LOG_RECORDS = 5
    result = ForegroundRunner("t-chatty").execute(metadata={"records": 40})
    assert result.success
    found = messages(result.run_id, "chatters")
    assert found[:5] == [(1, f"record {i}") for i in range(5)]
    assert found[5][1].startswith("Log truncated: this attempt logged more than 5 records")
    assert len(found) == 6


def test_the_foreground_runner_tells_each_record_as_it_is_written(test_pipelines, tmp_path):
    release = tmp_path / "release"
    heard: list[str] = []

    def on_event(name: str, **data: object) -> None:
        if name == "log":
            heard.append(str(data["message"]))
            if data["message"] == "tick 2":
                # The step is still running: what it logged so far is in the database.
                assert logged(Run.objects.get().id, "tick 1")
                release.touch()

    result = ForegroundRunner("t-live-logs", on_event=on_event).execute(
        metadata={"release": str(release), "every": 0.1}
    )
    assert result.success
    assert heard[0] == "waiting" and heard[-1] == "released"
    assert [m for _, m in messages(result.run_id)] == heard


def test_records_of_a_timed_out_attempt_are_kept(test_pipelines):
    result = ForegroundRunner("t-live-logs-timeout").execute(metadata={"every": 0.1})
    assert not result.success
    attempt = StepAttempt.objects.get(run_id=result.run_id)
    assert attempt.outcome == AttemptOutcome.TIMED_OUT
    found = messages(result.run_id)
    assert found[0] == (1, "waiting") and (1, "tick 3") in found


def test_records_of_a_cancelled_attempt_are_kept(test_pipelines, workers):
    run = enqueue("t-live-logs", metadata={"every": 0.1})
    workers("--no-schedules")
    wait_until(lambda: logged(run.id, "tick 2"), message="the step's first records")
    run_cancel(run.id)
    wait_until(
        lambda: StepAttempt.objects.filter(run=run, outcome=AttemptOutcome.CANCELLED).exists(),
        message="the cancelled attempt",
    )
    found = messages(run.id)
    assert found[0] == (1, "waiting") and (1, "tick 2") in found
    assert Run.objects.get(id=run.id).status == RunStatus.CANCELLED


def test_records_a_killed_worker_wrote_survive_and_the_next_attempt_adds_its_own(
    test_pipelines, workers, tmp_path
):
    release = tmp_path / "release"
    run = enqueue("t-live-logs", metadata={"every": 0.1, "release": str(release)})
    doomed = workers("--no-schedules", env={"ORBIT_LEASE_SECONDS": "2"})
    wait_until(lambda: logged(run.id, "tick 2"), message="the first attempt's records")
    doomed.send(signal.SIGKILL)
    doomed.wait(10)
    before = messages(run.id)
    release.touch()
    workers("--no-schedules", env={"ORBIT_LEASE_SECONDS": "2"})
    wait_until(
        lambda: Run.objects.get(id=run.id).status == RunStatus.SUCCEEDED,
        timeout=30,
        message="the run to be recovered and finished",
    )
    after = messages(run.id)
    assert after[: len(before)] == before  # the first attempt's records, as they were
    assert after[len(before) :] == [(2, "waiting"), (2, "released")]


def test_a_page_reads_a_steps_latest_records(test_pipelines, settings):
    result = ForegroundRunner("t-chatty").execute(metadata={"records": 30})
    run = Run.objects.get(id=result.run_id)
    step = run.steps.get()
    latest = run_logs([step], limit_per_step=4)[step.id]
    assert [r["message"] for r in latest] == [f"record {i}" for i in range(26, 30)]
    page = step_logs(step, after="1.27")
    assert [r["message"] for r in page.records] == ["record 28", "record 29"]
