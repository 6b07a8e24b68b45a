"""Django's Tasks framework on Orbit, through the framework's public API only, with real
`runworker` processes (tests/tasks_for_tests.py holds the task functions; the workers
import them by their paths)."""

from __future__ import annotations

import signal
import sys
import textwrap
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

try:  # Django 6
    from django.tasks import TaskResultStatus, task
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
except ImportError:  # Django 5.2: the backport
    from django_tasks import TaskResultStatus, task
    from django_tasks.exceptions import InvalidTaskError as InvalidTask
    from django_tasks.exceptions import TaskResultDoesNotExist

from runs import enqueue
from runs.models import Run, RunStatus
from runs.models import Worker as WorkerRow
from tests import tasks_for_tests as t
from tests.processes import ROOT, stays_true, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FAST = {"ORBIT_POLL_INTERVAL": "0.1"}
LEASE = {**FAST, "ORBIT_LEASE_SECONDS": "1.5"}


def settles(result, status, timeout: float = 30.0) -> None:
    """Wait until `result.refresh()` shows `status`."""

    def shows() -> bool:
        result.refresh()
        return result.status == status

    wait_until(shows, timeout=timeout, message=f"{result.task.name} to be {status}")


def worker_name(process) -> str:
    return wait_until(
        lambda: WorkerRow.objects.filter(pid=process.pid).values_list("name", flat=True).first(),
        message="the worker's row",
    )


def test_a_worker_runs_a_task_and_the_result_shows_each_status_in_turn(
    test_pipelines, workers, tmp_path
):
    release = tmp_path / "release"
    result = t.waits_for.enqueue(str(release))
    assert (result.status, result.args, result.kwargs) == (
        TaskResultStatus.READY,
        [str(release)],
        {},
    )
    assert result.enqueued_at is not None
    fetched = t.waits_for.get_result(result.id)
    assert (fetched.status, fetched.attempts, fetched.worker_ids) == (TaskResultStatus.READY, 0, [])
    assert (fetched.started_at, fetched.last_attempted_at, fetched.finished_at) == (
        None,
        None,
        None,
    )
    with pytest.raises(ValueError, match="Task has not finished yet"):
        _ = fetched.return_value

    pipeline_run = enqueue("t-single")  # the same worker runs pipelines and tasks
    worker = workers("--no-schedules", env=FAST)
    settles(result, TaskResultStatus.RUNNING)
    assert result.worker_ids == [worker_name(worker)]
    assert result.attempts == 1
    assert result.started_at is not None and result.last_attempted_at is not None
    assert result.finished_at is None

    release.touch()
    settles(result, TaskResultStatus.SUCCESSFUL)
    assert result.return_value == "released"
    assert result.finished_at >= result.started_at >= result.enqueued_at
    assert (result.attempts, result.errors) == (1, [])
    wait_until(lambda: Run.objects.get(id=pipeline_run.id).status == RunStatus.SUCCEEDED)
    # A pipeline of its own, named by the task's path, with the arguments as its input.
    run = Run.objects.select_related("pipeline").get(id=result.id)
    assert run.pipeline.name == "tests.tasks_for_tests.waits_for"
    assert run.metadata == {"args": [str(release)], "kwargs": {}}


def test_a_failing_task_shows_its_errors_redacted(test_pipelines, workers):
    result = t.fails.enqueue(password="hunter2")
    workers("--no-schedules", env=FAST)
    settles(result, TaskResultStatus.FAILED)
    [error] = result.errors
    assert error.exception_class_path == "builtins.ValueError"
    assert error.exception_class is ValueError
    assert "ValueError: could not log in with password=[redacted]" in error.traceback
    assert "hunter2" not in error.traceback
    assert result.attempts == 1
    assert result.finished_at is not None
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value


@pytest.mark.skipif(not t.OWN_OPTIONS, reason="Django 6.0's @task takes no backend options")
def test_a_failing_task_is_retried_with_its_own_options_and_counts_its_attempts(
    test_pipelines, workers
):
    result = t.flaky.enqueue(fail_times=2)  # @task(max_retries=2, backoff=0.05)
    worker = workers("--no-schedules", env=FAST)
    settles(result, TaskResultStatus.SUCCESSFUL)
    assert result.return_value == {"attempt": 3}  # TaskContext.attempt, the third
    assert result.attempts == 3
    assert result.worker_ids == [worker_name(worker)] * 3
    assert [e.exception_class_path for e in result.errors] == ["builtins.RuntimeError"] * 2
    assert "flaky failure on attempt 2" in result.errors[1].traceback


@pytest.mark.skipif(not t.OWN_OPTIONS, reason="Django 6.0's @task takes no backend options")
def test_a_task_past_its_own_timeout_is_stopped(test_pipelines, workers):
    result = t.sleeps.enqueue(30)  # @task(timeout=0.5)
    workers("--no-schedules", env=FAST)
    settles(result, TaskResultStatus.FAILED)
    [error] = result.errors
    assert error.exception_class_path == "orbit.core.exceptions.StepTimeout"
    assert error.traceback == "Step 'task' ran past its 0.5 s timeout and was stopped"


def test_a_task_that_returns_no_json_fails_saying_so(test_pipelines, workers):
    result = t.returns_a_set.enqueue()
    workers("--no-schedules", env=FAST)
    settles(result, TaskResultStatus.FAILED)
    [error] = result.errors
    assert error.exception_class_path == "orbit.core.exceptions.InvalidResult"
    assert (
        "Task 'tests.tasks_for_tests.returns_a_set' returned a value that is not "
        "JSON-serialisable (Unsupported type: <class 'set'>)"
    ) in error.traceback


def test_a_deferred_task_starts_after_its_time(test_pipelines, workers, tmp_path):
    journal = tmp_path / "journal"
    run_after = timezone.now() + timedelta(seconds=2)
    result = t.stamp.using(run_after=run_after).enqueue(str(journal), "late")
    workers("--no-schedules", env=FAST)
    stays_true(
        lambda: t.stamp.get_result(result.id).status == TaskResultStatus.READY,
        1.0,
        message="the task waits for its time",
    )
    settles(result, TaskResultStatus.SUCCESSFUL)
    assert result.started_at >= run_after
    ran_at = float(journal.read_text().split()[1])
    assert ran_at >= run_after.timestamp()


def test_priorities_order_a_queue(test_pipelines, workers, tmp_path):
    journal = tmp_path / "journal"
    results = [
        t.stamp.using(priority=priority).enqueue(str(journal), label)
        for label, priority in [("low", -50), ("default", 0), ("high", 100), ("higher", 10)]
    ]
    workers("--no-schedules", "--concurrency", "1", env=FAST)
    for result in results:
        settles(result, TaskResultStatus.SUCCESSFUL)
    order = [line.split()[0] for line in journal.read_text().splitlines()]
    assert order == ["high", "higher", "default", "low"]
    assert t.stamp.get_result(results[2].id).task.priority == 100  # as it was enqueued


def test_an_async_task_runs_in_the_child(test_pipelines, workers):
    result = t.adds_later.enqueue(2, 3)
    worker = workers("--no-schedules", env=FAST)
    settles(result, TaskResultStatus.SUCCESSFUL)
    assert result.return_value["sum"] == 5
    assert result.return_value["pid"] != worker.pid  # the supervised child ran it


def test_a_task_that_takes_context_gets_its_result_and_attempt(test_pipelines, workers):
    result = t.reports_context.enqueue(7)
    workers("--no-schedules", env=FAST)
    settles(result, TaskResultStatus.SUCCESSFUL)
    assert result.return_value == {"attempt": 1, "id": result.id, "x": 7}


def test_a_task_killed_with_its_worker_resumes_and_succeeds(test_pipelines, workers, tmp_path):
    started = tmp_path / "started"
    result = t.survives_a_crash.enqueue(str(started))
    doomed = workers("--no-schedules", env=LEASE)
    wait_until(started.exists, message="the first attempt to start")
    settles(result, TaskResultStatus.RUNNING)
    doomed_name = worker_name(doomed)
    doomed.send(signal.SIGKILL)
    doomed.wait(10)
    rescuer = workers("--no-schedules", env=LEASE)
    settles(result, TaskResultStatus.SUCCESSFUL)
    assert result.return_value == {"attempt": 2}
    assert result.worker_ids == [doomed_name, worker_name(rescuer)]
    [error] = result.errors  # the attempt the crash ended, not the task's fault
    assert error.exception_class_path == "orbit.core.exceptions.LeaseLost"


def test_a_task_this_worker_cannot_import_is_left_for_one_that_can(
    test_pipelines, workers, tmp_path, monkeypatch
):
    (tmp_path / "tasks_elsewhere.py").write_text(
        textwrap.dedent(
            """
            try:
                from django.tasks import task
            except ImportError:
                from django_tasks import task

            @task()
            def double(x):
                return x * 2
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import tasks_elsewhere

    try:
        result = tasks_elsewhere.double.enqueue(21)
        without = workers("--no-schedules", env=FAST)
        worker_name(without)
        stays_true(
            lambda: tasks_elsewhere.double.get_result(result.id).status == TaskResultStatus.READY,
            2.0,
            message="the run waits, untouched, for a worker that has the task",
        )
        able = workers("--no-schedules", env={**FAST, "PYTHONPATH": f"{ROOT}:{tmp_path}"})
        settles(result, TaskResultStatus.SUCCESSFUL)
        assert result.return_value == 42
        assert result.worker_ids == [worker_name(able)]
        assert without.process.poll() is None  # still serving, never failed the run
    finally:
        sys.modules.pop("tasks_elsewhere", None)
        from pipelines.definition import registry

        registry.unregister("tasks_elsewhere.double")


def test_an_unknown_queue_is_refused(test_pipelines):
    with pytest.raises(InvalidTask, match=r"^Queue 'nowhere' is not valid for backend\.$"):
        t.add.using(queue_name="nowhere").enqueue(1, 2)
    assert not Run.objects.exists()


def test_invalid_tasks_are_refused(test_pipelines):
    def local(x):
        return x

    with pytest.raises(InvalidTask, match=r"^Task function must be defined at a module level\.$"):
        task()(local)
    with pytest.raises(InvalidTask) as refused:
        t.renamed.enqueue()
    assert str(refused.value) == (
        "Workers import a task by its path, and 'tests.tasks_for_tests._hidden' does not "
        "name this task here: define it at the top level of an importable module, under "
        "the function's own name"
    )
    if t.OWN_OPTIONS:
        with pytest.raises(InvalidTask) as refused:
            task(max_retries=-1)(t._hidden)
        assert str(refused.value) == (
            "Pipeline 'tests.tasks_for_tests._hidden', step 'task': max_retries must be 0 or "
            "more, not -1"
        )
    with pytest.raises(TypeError) as refused:
        t.add.enqueue({1, 2}, 3)
    assert str(refused.value) == (
        "Task 'tests.tasks_for_tests.add': its arguments must be JSON-serialisable "
        "(Unsupported type: <class 'set'>)"
    )
    assert not Run.objects.exists()


def test_an_unknown_result_id_is_refused(test_pipelines):
    with pytest.raises(TaskResultDoesNotExist):
        t.add.get_result("not-a-run")
    with pytest.raises(TaskResultDoesNotExist):
        t.add.get_result("01a23852-38b5-737a-b864-33dc899b1208")
    run = enqueue("t-single")  # a pipeline's run is no task's result
    with pytest.raises(TaskResultDoesNotExist):
        t.add.get_result(str(run.id))


def test_aenqueue_and_aget_result(test_pipelines):
    import asyncio

    from asgiref.sync import sync_to_async
    from django.db import connections

    async def both():
        try:
            result = await t.add.aenqueue(1, 2)
            return result, await t.add.aget_result(result.id)
        finally:  # the thread the framework ran them in keeps its own connection
            await sync_to_async(connections.close_all)()

    result, fetched = asyncio.run(both())
    assert (fetched.id, fetched.status, fetched.args) == (result.id, TaskResultStatus.READY, [1, 2])


def test_enqueue_costs_what_any_enqueue_costs(test_pipelines):
    """As any run (tests/runs/test_enqueue_cost.py): the insert alone on PostgreSQL, its
    pipeline row cached (made and read on the first enqueue)."""
    from tests.runs.test_enqueue_cost import SINGLE

    t.add.enqueue(1, 2)
    with CaptureQueriesContext(connection) as queries:
        t.add.enqueue(3, 4)
    assert len(queries) == SINGLE[connection.vendor], [
        q["sql"][:80] for q in queries.captured_queries
    ]


def test_a_cancelled_task_is_failed_with_the_reason(test_pipelines):
    from runs.lifecycle import run_cancel

    result = t.add.enqueue(1, 2)
    run_cancel(result.id, reason="Not needed: token=abc123")
    result.refresh()
    assert result.status == TaskResultStatus.FAILED  # the framework has no "cancelled"
    [error] = result.errors
    assert error.exception_class_path == "orbit.core.exceptions.RunCancelled"
    assert error.traceback == "Not needed: token=[redacted]"
    assert result.finished_at is not None


def test_a_child_forked_before_its_worker_knew_a_task_loads_it_itself(test_pipelines):
    """Children outlive many runs: one forked before the worker loaded a task imports the
    task itself when handed a run of it, instead of failing the attempt."""
    from pipelines import tasks
    from pipelines.definition import registry
    from runs.attempts import StepTask
    from runs.child import run_task

    result = t.add.enqueue(2, 3)
    tasks._tasks.pop("tests.tasks_for_tests.add")
    registry.unregister("tests.tasks_for_tests.add")
    tasks._missing["tests.tasks_for_tests.add"] = float("inf")  # even just failed to load
    report = run_task(
        StepTask(
            run_id=result.id,
            pipeline="tests.tasks_for_tests.add",
            definition="tests.tasks_for_tests.add",
            step="task",
            step_id=1,
            index=0,
            metadata={"args": [2, 3], "kwargs": {}},
            prev_results={},
            try_number=1,
            failures=0,
            timeout=10,
        ),
        None,
    )
    assert (report.outcome, report.result_json) == ("succeeded", "5")


def test_a_task_enqueued_in_a_transaction_that_rolls_back_is_not_queued(test_pipelines):
    from django.db import transaction

    t.add.enqueue(0, 0)  # its pipeline row, made on first enqueue, stays
    with pytest.raises(RuntimeError), transaction.atomic():
        t.add.enqueue(1, 2)
        raise RuntimeError("the order was not saved")
    assert Run.objects.count() == 1
