"""The worker, three ways: in-process burst runs (query count pinned), and real
processes sent real signals (see also test_crashes.py)."""

from __future__ import annotations

import itertools
import signal
import time
from pathlib import Path

import pytest
from django.db import connection

from runs import enqueue
from runs.models import AttemptOutcome, Run, RunStatus, StepAttempt
from runs.models import Worker as WorkerRow
from runs.worker import WorkerLoop
from tests.processes import stat_fields, wait_until
from tests.runs.workers import burst, statements_per_run

pytestmark = pytest.mark.django_db(transaction=True)


def statuses() -> dict[str, int]:
    from django.db.models import Count

    return dict(Run.objects.values_list("status").annotate(n=Count("id")).order_by())


def test_burst_worker_drains_the_queue_and_stops(test_pipelines):
    runs = [enqueue("t-three") for _ in range(5)] + [enqueue("t-flaky", metadata={"fail_times": 1})]
    worker = burst(concurrency=2)
    assert statuses() == {"succeeded": 6}
    assert worker.runs_done == 7  # the flaky run was released once for its backoff
    row = WorkerRow.objects.get()
    assert (row.state, row.succeeded_count, row.failed_count) == ("stopped", 6, 0)
    assert all(r.worker_id is None or r.worker_id == row.id for r in Run.objects.all())
    assert len(runs) == 6


def test_queries_per_run_are_pinned(test_pipelines):
    """Claim, begin, commit: a one-step run costs a fixed number of statements. On
    PostgreSQL that is two: the claim starts the step, one statement commits its success."""
    per_run, six = statements_per_run()
    expected = 2 if connection.vendor == "postgresql" else 12
    assert per_run == expected, [q["sql"][:80] for q in six.captured_queries]


@pytest.mark.parametrize("missing", ["two", "three"])
def test_steps_added_to_a_pipeline_run_for_runs_created_before(test_pipelines, missing):
    """A run created before its pipeline gained a step (here: the step's row removed)
    runs that step too, wherever it falls, instead of finishing without it."""
    from runs.models import Step

    run = enqueue("t-three")
    Step.objects.filter(run=run, name=missing).delete()
    burst()
    assert Run.objects.get(id=run.id).status == RunStatus.SUCCEEDED
    ran = dict(Step.objects.filter(run=run).values_list("name", "status"))
    assert ran == {"one": "succeeded", "two": "succeeded", "three": "succeeded"}
    assert StepAttempt.objects.filter(run=run, step__name=missing, outcome="succeeded").count() == 1


def test_running_time_adds_up_the_attempts_and_the_error_counts_the_history(test_pipelines):
    """Retried by an operator after failing twice, the run fails twice more: its running
    time is the sum of its four attempts (not the time since it was created), and its error
    says four attempts, as its history lists."""
    from runs.lifecycle import run_retry

    run = enqueue("t-failing")
    burst()
    run_retry(run.id)
    burst()
    run.refresh_from_db()
    durations = list(StepAttempt.objects.filter(run=run).values_list("duration", flat=True))
    assert len(durations) == 4
    assert run.error == "Step 'fails' failed after 4 attempts: ValueError: this step always fails"
    assert run.running_time == pytest.approx(sum(durations))
    assert run.elapsed_time is not None and run.elapsed_time > run.running_time


def test_priority_then_age_decides_the_order(test_pipelines, effects):
    low = enqueue("t-recorded", priority=0)
    high = enqueue("t-recorded", priority=5)
    burst()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT run_id FROM orbit_test_effects ORDER BY rowid"
            if connection.vendor == "sqlite"
            else "SELECT run_id FROM orbit_test_effects ORDER BY ctid"
        )
        order = [row[0] for row in cursor.fetchall()]
    assert order == [str(high.id), str(low.id)]


def test_disabled_pipeline_runs_wait(test_pipelines):
    from pipelines.models import Pipeline

    run = enqueue("t-single")
    Pipeline.objects.get(name="t-single").set_enabled(False)
    burst()
    assert Run.objects.get(id=run.id).status == RunStatus.PENDING


def test_timeout_kills_the_child_and_the_next_attempt_runs(test_pipelines):
    started = time.monotonic()
    run = enqueue("t-slow-once", metadata={"seconds": 60})
    burst()
    assert time.monotonic() - started < 10
    outcomes = list(
        StepAttempt.objects.filter(run=run).order_by("number").values_list("outcome", flat=True)
    )
    assert outcomes == [AttemptOutcome.TIMED_OUT, AttemptOutcome.SUCCEEDED]
    assert Run.objects.get(id=run.id).status == RunStatus.SUCCEEDED


def test_a_crashing_child_is_recorded_and_replaced(test_pipelines):
    crash = enqueue("t-crash")
    fine = enqueue("t-three")
    burst()
    attempts = StepAttempt.objects.filter(run=crash).order_by("number")
    assert [a.outcome for a in attempts] == [AttemptOutcome.CRASHED, AttemptOutcome.CRASHED]
    assert attempts[0].error == "The process running step 'crashes' exited with code 13"
    assert Run.objects.get(id=crash.id).status == RunStatus.FAILED
    assert Run.objects.get(id=fine.id).status == RunStatus.SUCCEEDED


def test_children_are_recycled(test_pipelines, effects):
    for _ in range(5):
        enqueue("t-recorded")
    burst(max_runs_per_child=2)
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(DISTINCT pid) FROM orbit_test_effects")
        assert cursor.fetchone()[0] == 3


def test_max_runs_stops_the_worker(test_pipelines):
    for _ in range(4):
        enqueue("t-single")
    worker = WorkerLoop(max_runs=2, listen=False, schedules=False, poll_interval=0.05)
    worker.run()
    assert statuses() == {"succeeded": 2, "pending": 2}


def test_cancel_stops_a_running_step_within_a_heartbeat(test_pipelines, workers):
    from runs.lifecycle import run_cancel

    run = enqueue("t-long", metadata={"seconds": 60})
    worker = workers("--no-schedules", env={"ORBIT_LEASE_SECONDS": "1.5"})
    wait_until(
        lambda: Run.objects.filter(id=run.id, current_step="sleeps").exists(),
        message="step 2 to start",
    )
    run_cancel(run.id)
    attempt = wait_until(
        lambda: StepAttempt.objects.filter(run=run, step__name="sleeps").first(),
        timeout=10,
        message="the cancelled attempt",
    )
    assert attempt.outcome == AttemptOutcome.CANCELLED
    assert Run.objects.get(id=run.id).status == RunStatus.CANCELLED
    worker.send(signal.SIGTERM)
    assert worker.wait(10) == 0


# ---------------------------------------------------------------- real processes


@pytest.mark.slow
def test_several_processes_execute_every_step_exactly_once(test_pipelines, workers, effects):
    runs = [enqueue("t-recorded-three", metadata={"seconds": 0}) for _ in range(150)]
    procs = [workers("--concurrency", "2", "--burst", "--no-schedules") for _ in range(3)]
    for proc in procs:
        assert proc.wait(120) == 0, proc.log()
    assert statuses() == {"succeeded": 150}
    counts = effects()
    assert len(counts) == 150 * 3
    assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v != 1}
    assert len(runs) == 150


def process_gone(pid: int) -> bool:
    """Exited (a zombie its parent has not reaped yet counts: it runs nothing) or gone."""
    try:
        state = stat_fields(pid)[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_cancel_kills_the_steps_process_within_a_second(test_pipelines, workers):
    """The worker hears of the cancel at once (NOTIFY; a datagram on SQLite), not at its next lease renewal: with
    the default 30 s lease that renewal is up to 10 s away."""
    from runs.lifecycle import run_cancel
    from runs.models import StepLog

    run = enqueue("t-live-logs", metadata={"every": 0.1})
    worker = workers("--no-schedules")
    waiting = wait_until(
        lambda: StepLog.objects.filter(run_id=run.id, message="waiting").first(),
        message="the step to start and say its process id",
    )
    pid = waiting.fields["pid"]
    assert not process_gone(pid)
    cancelled = time.monotonic()
    run_cancel(run.id)
    wait_until(lambda: process_gone(pid), timeout=1.0, interval=0.01, message="the step to die")
    assert time.monotonic() - cancelled < 1.0
    attempt = wait_until(
        lambda: StepAttempt.objects.filter(run=run, outcome=AttemptOutcome.CANCELLED).first(),
        timeout=5,
        message="the cancelled attempt",
    )
    assert attempt.duration is not None
    worker.send(signal.SIGTERM)
    assert worker.wait(10) == 0


def test_notify_wakes_an_idle_worker_at_once(test_pipelines, workers):
    worker = workers("--no-schedules", env={"ORBIT_POLL_INTERVAL": "30"})
    wait_until(
        lambda: WorkerRow.objects.filter(state="running").exists(), message="the worker to start"
    )
    time.sleep(0.5)  # let it settle into its idle wait; polling would take 30 s
    latencies = []
    for _ in range(5):
        started = time.monotonic()
        run = enqueue("t-single")
        wait_until(
            lambda run=run: Run.objects.filter(id=run.id, status="succeeded").exists(), timeout=10
        )
        latencies.append(time.monotonic() - started)
    assert max(latencies) < 2.0, latencies
    worker.send(signal.SIGTERM)
    assert worker.wait(10) == 0


def children_of(pid: int) -> set[int]:
    """The process ids `pid` has forked and not yet reaped (Linux's own list)."""
    text = (Path(f"/proc/{pid}/task/{pid}/children")).read_text()
    return {int(child) for child in text.split()}


def test_a_worker_forks_its_step_processes_before_its_first_claim(
    test_pipelines, workers, tmp_path
):
    """A worker starts with one child per slot, so a batch it claims starts at once,
    each run in a child forked before the claim, none behind forks made after it."""
    worker = workers("--no-schedules", "--concurrency", "3")
    wait_until(
        lambda: WorkerRow.objects.filter(state="running").exists(), message="the worker to start"
    )
    ready = wait_until(
        lambda: len(children_of(worker.pid)) == 3 and children_of(worker.pid),
        timeout=10,
        message="three step processes while no run has been queued",
    )
    journal = tmp_path / "journal"
    runs = [enqueue("t-single", metadata={"journal": str(journal), "i": i}) for i in range(3)]
    wait_until(
        lambda: Run.objects.filter(id__in=[r.id for r in runs], status="succeeded").count() == 3,
        message="the three runs",
    )
    ran_in = {int(line.split()[3]) for line in journal.read_text().splitlines()}
    assert ran_in <= ready, (ran_in, ready)
    assert children_of(worker.pid) == ready  # the same three, reused
    worker.send(signal.SIGTERM)
    assert worker.wait(10) == 0


def test_sigterm_lets_the_step_finish_and_hands_the_run_on(test_pipelines, workers, effects):
    run = enqueue("t-recorded-three", metadata={"seconds": 2})
    first = workers("--no-schedules", "--grace", "30")
    wait_until(lambda: effects(run.id).get((str(run.id), "two")), message="step two to start")
    first.send(signal.SIGTERM)
    assert first.wait(30) == 0, first.log()
    run.refresh_from_db()
    assert run.status == RunStatus.PENDING  # step two finished; step three waits for a worker
    assert run.steps.get(name="two").status == "succeeded"
    assert WorkerRow.objects.get(pid=first.pid).state == "stopped"
    second = workers("--no-schedules", "--burst")
    assert second.wait(30) == 0
    assert Run.objects.get(id=run.id).status == RunStatus.SUCCEEDED
    assert effects(run.id) == {
        (str(run.id), "one"): 1,
        (str(run.id), "two"): 1,
        (str(run.id), "three"): 1,
    }


def test_grace_expiry_hands_the_run_back_without_spending_a_retry(test_pipelines, workers, effects):
    run = enqueue("t-recorded-three", metadata={"seconds": 60})
    worker = workers("--no-schedules", "--grace", "0.5")
    wait_until(lambda: effects(run.id).get((str(run.id), "two")), message="step two to start")
    started = time.monotonic()
    worker.send(signal.SIGTERM)
    assert worker.wait(15) == 0, worker.log()
    assert time.monotonic() - started < 5
    run.refresh_from_db()
    assert run.status == RunStatus.PENDING
    step = run.steps.get(name="two")
    assert (step.status, step.failures) == ("pending", 0)
    assert list(step.attempt_records.values_list("outcome", flat=True)) == [
        AttemptOutcome.INTERRUPTED
    ]


def test_idle_worker_exits_within_a_second(test_pipelines, workers):
    worker = workers("--no-schedules")
    wait_until(
        lambda: WorkerRow.objects.filter(state="running").exists(), message="the worker to start"
    )
    started = time.monotonic()
    worker.send(signal.SIGTERM)
    assert worker.wait(5) == 0
    assert time.monotonic() - started < 1.0
    assert WorkerRow.objects.get().state == "stopped"


def test_second_signal_stops_at_once(test_pipelines, workers, effects):
    run = enqueue("t-recorded-three", metadata={"seconds": 60})
    worker = workers("--no-schedules", "--grace", "60")
    wait_until(lambda: effects(run.id).get((str(run.id), "two")), message="step two to start")
    worker.send(signal.SIGTERM)
    time.sleep(0.3)
    worker.send(signal.SIGINT)
    assert worker.wait(10) == 0
    assert Run.objects.get(id=run.id).status == RunStatus.PENDING


def test_a_run_due_that_this_worker_cannot_take_is_not_claimed_over_and_over(test_pipelines):
    """A run of a pipeline this worker does not define stays pending for one that does,
    and the worker looks for it once a poll interval, not in a busy loop."""
    import threading

    from pipelines.definition import registry
    from runs.worker.loop import Stop

    run = enqueue("t-single")
    definition = registry.find("t-single")
    registry.unregister("t-single")
    try:
        worker = WorkerLoop(listen=False, schedules=False, poll_interval=0.2)
        claims: list[float] = []
        claim = worker.timers.duties["claim"].action
        worker.timers.duties["claim"].action = lambda: claims.append(time.monotonic()) or claim()
        threading.Timer(2.0, lambda: worker.shutdown(Stop.NOW)).start()
        worker.run()
    finally:
        registry.register(definition)
    assert len(claims) >= 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(claims)]
    # One quick look again (a delayed run may have come due between the claim and the
    # question: runs/worker/loop.py DUE_RECHECK_SECONDS), then a poll interval apart
    # (claiming again at once each time would be a busy loop).
    assert gaps[0] < 0.19
    assert min(gaps[1:]) >= 0.19
    assert Run.objects.get(id=run.id).status == RunStatus.PENDING


def test_a_claim_that_finds_only_unknown_tasks_due_loads_them_and_runs_them(test_pipelines):
    from pipelines import tasks
    from pipelines.definition import registry
    from tests import tasks_for_tests as t

    result = t.add.enqueue(2, 3)
    tasks._tasks.pop("tests.tasks_for_tests.add")  # as in a worker that never imported it
    registry.unregister("tests.tasks_for_tests.add")
    worker = WorkerLoop(burst=True, listen=False, schedules=False, poll_interval=0.05)
    worker.timers.postpone("discover", 3600)  # only the empty claim can bring it forward
    worker.run()
    result.refresh()
    assert (result.status, result.return_value) == ("SUCCESSFUL", 5)
