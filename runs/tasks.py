"""Django's Tasks framework on Orbit: `TASKS = {"default": {"BACKEND": "runs.tasks.OrbitBackend"}}`.

`task.enqueue(...)` queues a run of the task's own pipeline (pipelines/tasks.py: one step,
named by the function's dotted path) with the arguments as its input; `runworker` runs it
in its supervised child process like any step, with Orbit's retries, timeouts, leases and
recovery. `get_result` reads the run back as a `TaskResult`, field by field from Orbit's
rows, so `refresh()` always shows the state a worker last committed. docs/TASKS.md.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from typing_extensions import ParamSpec

from orbit.core.exceptions import DefinitionError, RunCancelled, type_path
from orbit.core.redaction import redact_text
from pipelines.tasks import (
    TASK_STEP,
    OrbitTask,
    TaskDefaults,
    definition_for,
    task_name,
    task_named,
)
from pipelines.tasks_compat import (
    BaseTaskBackend,
    InvalidTask,
    Task,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    normalize_json,
    task_enqueued,
)
from runs.enqueueing import get_pipeline, run_create
from runs.models import AttemptOutcome, Run, RunStatus, Step, StepAttempt

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

#: The longest queue name a run can carry (Run.queue).
QUEUE_NAME_LENGTH = 64

#: Orbit's run status as the framework names it. The framework has no "cancelled": an
#: operator's cancellation ends the task as FAILED, with a RunCancelled error.
STATUS = {
    RunStatus.PENDING: TaskResultStatus.READY,
    RunStatus.RUNNING: TaskResultStatus.RUNNING,
    RunStatus.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
    RunStatus.FAILED: TaskResultStatus.FAILED,
    RunStatus.CANCELLED: TaskResultStatus.FAILED,
}


class OrbitBackend(BaseTaskBackend):
    """Tasks as durable Orbit runs: retried with backoff, timed out, recovered after a
    crash, and shown in the console and the API like any pipeline's runs."""

    task_class = OrbitTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        where = f"TASKS[{alias!r}]"
        try:
            self.defaults = TaskDefaults.from_options(self.options)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{where}['OPTIONS']: {exc}") from None
        for queue in self.queues:
            if not isinstance(queue, str) or not 0 < len(queue) <= QUEUE_NAME_LENGTH:
                raise ImproperlyConfigured(
                    f"{where}['QUEUES']: a queue name is 1-{QUEUE_NAME_LENGTH} characters, "
                    f"not {queue!r}"
                )

    def validate_task(self, task: Task[..., Any]) -> None:
        """The framework's rules, and Orbit's: the task can be a pipeline (a module-level
        function with a valid dotted path) and its own options are valid."""
        super().validate_task(task)
        try:
            definition_for(task, self.defaults)
        except DefinitionError as exc:
            raise InvalidTask(str(exc)) from None

    def enqueue(self, task: Task[P, T], args: Any, kwargs: Any) -> TaskResult[P, T]:
        """Queue a run of the task's pipeline (its row is created on first enqueue);
        two statements on PostgreSQL, as for any run."""
        self.validate_task(task)
        name = task_name(task)
        if task_named(name) is None:
            raise InvalidTask(
                f"Workers import a task by its path, and {name!r} does not name this task "
                "here: define it at the top level of an importable module, under the "
                "function's own name"
            )
        try:
            arguments = {"args": normalize_json(list(args)), "kwargs": normalize_json(kwargs)}
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"Task {name!r}: its arguments must be JSON-serialisable ({exc})"
            ) from None
        row = get_pipeline(name)
        if row.definition != name:
            raise InvalidTask(
                f"A pipeline named {name!r} already exists and runs {row.definition!r}, "
                "not this task; rename that pipeline"
            )
        run = run_create(
            row,
            metadata=arguments,
            priority=task.priority,
            queue=task.queue_name,
            run_after=_due(task.run_after),
        )
        result: TaskResult[P, T] = TaskResult(
            task=task,
            id=str(run.id),
            status=TaskResultStatus.READY,
            enqueued_at=run.created_at,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=run.metadata.get("args", []),
            kwargs=run.metadata.get("kwargs", {}),
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult[..., Any]:
        """The task's run as it stands now: TaskResultDoesNotExist if there is no such
        run, or it is not a task's run, or the task cannot be imported here."""
        try:
            run = Run.objects.select_related("pipeline", "worker").get(id=uuid.UUID(str(result_id)))
        except (Run.DoesNotExist, ValueError):
            raise TaskResultDoesNotExist(result_id) from None
        task = task_named(run.pipeline.definition)
        if task is None:
            raise TaskResultDoesNotExist(
                f"{result_id}: a run of {run.pipeline.definition!r}, which is not a task "
                "this process can import"
            )
        step = Step.objects.filter(run_id=run.id, name=TASK_STEP).first()
        attempts = list(
            StepAttempt.objects.filter(run_id=run.id)
            .order_by("step_id", "number")
            .values_list("outcome", "error", "error_type", "traceback", "worker__name")
        )
        return self._result(run, _as_enqueued(task, run), step, attempts)

    def _result(
        self,
        run: Run,
        task: Task[..., Any],
        step: Step | None,
        attempts: Sequence[tuple[str, str, str, str, str | None]],
    ) -> TaskResult[..., Any]:
        metadata = run.metadata if isinstance(run.metadata, dict) else {}
        worker_ids = [worker or "" for *_, worker in attempts]
        if run.status == RunStatus.RUNNING:  # the attempt in progress counts too
            worker_ids.append(run.worker.name if run.worker else "")
        result: TaskResult[..., Any] = TaskResult(
            task=task,
            id=str(run.id),
            status=STATUS[RunStatus(run.status)],
            enqueued_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            last_attempted_at=step.started_at if step is not None else None,
            args=metadata.get("args", []),
            kwargs=metadata.get("kwargs", {}),
            backend=self.alias,
            errors=_errors(run, attempts),
            worker_ids=worker_ids,
        )
        if run.status == RunStatus.SUCCEEDED and step is not None:
            object.__setattr__(result, "_return_value", step.result)
        return result

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        messages = list(super().check(**kwargs))
        if not self.queues:
            messages.append(
                checks.Warning(
                    f"TASKS[{self.alias!r}] lists no QUEUES, so any queue name is accepted; "
                    "a task on a queue no worker serves (runworker --queues) waits for ever",
                    id="orbit.tasks.W001",
                )
            )
        return messages


def _due(run_after: datetime | None) -> datetime | None:
    """Not before `run_after`; a moment already past means now."""
    if run_after is None or run_after <= timezone.now():
        return None
    return run_after


def _as_enqueued(task: Task[..., Any], run: Run) -> Task[..., Any]:
    """The task with the priority and queue its run was given (`task.using(...)`)."""
    if (task.priority, task.queue_name) == (run.priority, run.queue):
        return task
    try:
        return task.using(priority=run.priority, queue_name=run.queue)
    except InvalidTask:  # no longer valid for the backend (its QUEUES changed)
        return task


def _errors(run: Run, attempts: Sequence[tuple[str, str, str, str, str | None]]) -> list[TaskError]:
    """One error per attempt that did not succeed, in order: its exception's class path
    and traceback (the message, where the attempt ended without one: a timeout, a crash,
    an interruption). Stored redacted (runs/execution.py), so shown as stored."""
    errors = [
        TaskError(
            exception_class_path=error_type or type_path(Exception),
            traceback=traceback or error,
        )
        for outcome, error, error_type, traceback, _ in attempts
        if outcome != AttemptOutcome.SUCCEEDED
    ]
    cancelled_attempt = attempts and attempts[-1][0] == AttemptOutcome.CANCELLED
    if run.status == RunStatus.CANCELLED and not cancelled_attempt:
        errors.append(
            TaskError(
                exception_class_path=type_path(RunCancelled),
                traceback=redact_text(run.error or "Run cancelled by an operator"),
            )
        )
    return errors
