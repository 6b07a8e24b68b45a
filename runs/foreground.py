"""Run a pipeline in the foreground (`orbit run`, `orbit resume`, programs), durably.

The run is stored like any other and driven through the same calls the worker uses
(runs/execution.py), one step attempt at a time in a supervised child process
(runs/supervision.py). The difference: this process keeps holding the run through
backoff waits (renewing its lease) instead of releasing it. If it dies, the lease runs
out and a worker resumes the run.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.db import transaction

from orbit.core.conf import orbit_settings
from orbit.core.exceptions import InvalidTransition
from pipelines.definition import Pipeline as Definition
from pipelines.models import Pipeline
from runs.attempts import AttemptReport, StepTask
from runs.child import StepProcess
from runs.enqueueing import get_pipeline, run_create
from runs.execution import Decision, HeldRun, Next, begin, hand_back, record
from runs.models import Run, RunStatus, Step, StepStatus
from runs.recovery import recover_run
from runs.store import store
from runs.supervision import SupervisedAttempt
from runs.tracing import end_run_span, run_span

EventHandler = Callable[..., None]


@dataclass
class ForegroundResult:
    success: bool
    run_id: uuid.UUID
    duration: float
    results: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    status: str = ""


class ForegroundRunner:
    """`ForegroundRunner(definition).execute(metadata=...)`: run now, wait, get results.

    `on_event(name, **data)` hears `step_started`, `log` (each record a step logs, as it
    is written to the database), `step_succeeded`, `attempt_failed`, `retry_scheduled`,
    `run_finished`; the CLI prints them.
    """

    def __init__(
        self,
        pipeline: Definition | Pipeline | str,
        *,
        on_event: EventHandler | None = None,
        lease_seconds: float | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.on_event = on_event or (lambda name, **data: None)
        self.lease_seconds = lease_seconds or orbit_settings.lease_seconds

    def _row(self) -> Pipeline:
        if isinstance(self.pipeline, Pipeline):
            return self.pipeline
        name = self.pipeline.name if isinstance(self.pipeline, Definition) else self.pipeline
        return get_pipeline(name)

    def execute(
        self, metadata: dict[str, Any] | None = None, *, priority: int = 0
    ) -> ForegroundResult:
        row = self._row()
        with transaction.atomic():
            run = run_create(row, metadata=metadata, priority=priority)
            # Held from the start (no worker sees it before this commits); if this
            # process dies, the lease expires and recovery hands the run to the workers.
            claim = store().claim_run(run.id, worker_id=None, lease_seconds=self.lease_seconds)
        assert claim is not None
        return self._drive(HeldRun(claim, span=run_span(claim)))

    def resume(self, run_id: uuid.UUID) -> ForegroundResult:
        claim = store().claim_run(run_id, worker_id=None, lease_seconds=self.lease_seconds)
        if claim is None:
            raise InvalidTransition(f"Run {run_id} could not be claimed: another process took it")
        return self._drive(HeldRun(claim, span=run_span(claim)))

    def _drive(self, held: HeldRun) -> ForegroundResult:
        started = time.monotonic()
        process: StepProcess | None = None
        task: StepTask | None = None
        decision = begin(held, lease_seconds=self.lease_seconds)
        try:
            while decision.next is Next.STEP:
                task = decision.task
                assert task is not None
                if process is None or not process.is_alive():
                    process = StepProcess()
                self.on_event(
                    "step_started", step=task.step, attempt=task.try_number, run_id=task.run_id
                )
                attempt = SupervisedAttempt(process, task, run_span=held.span)
                report = attempt.wait(
                    tick=lambda: self._renew(held),
                    tick_every=self.lease_seconds / 3,
                    write_logs=partial(self._write_logs, held, attempt),
                )
                self._write_logs(held, attempt)  # what it logged last, before its outcome
                if attempt.process_lost:
                    process.close()
                    process = None
                if report is None:
                    decision = Decision(Next.LOST)
                    break
                decision = record(
                    held, task, report, lease_seconds=self.lease_seconds, release_retries=False
                )
                self._announce(task, report, decision)
                task = None
                if decision.next is Next.RETRY:
                    self._wait(held, decision.delay or 0.0)
                    decision = begin(held, lease_seconds=self.lease_seconds)
        except BaseException:
            # Ctrl-C or a crash of this process: give the run back so workers resume it.
            decision = Decision(Next.HANDED_BACK)
            hand_back(held, task, None)
            raise
        finally:
            if process is not None:
                process.stop()
            end_run_span(held.span, decision.next.value, decision.error)
        return self._result(held, time.monotonic() - started)

    def _write_logs(self, held: HeldRun, attempt: SupervisedAttempt) -> None:
        """Write the attempt's new log records (as a worker does), and tell `on_event`."""
        batch = attempt.log_batch(held.claim.held)
        if batch is None:
            return
        store().append_logs([batch])
        attempt.logs.written(len(batch.lines))
        for line in batch.lines:
            self.on_event(
                "log",
                step=attempt.task.step,
                attempt=batch.attempt,
                time=line.time,
                level=line.level,
                message=line.message,
                fields=dict(line.fields),
            )

    def _renew(self, held: HeldRun) -> bool:
        return held.claim.run_id in store().renew(
            [held.claim.held], lease_seconds=self.lease_seconds
        )

    def _wait(self, held: HeldRun, delay: float) -> None:
        """Sleep through a backoff delay while keeping the lease."""
        until = time.monotonic() + delay
        while (left := until - time.monotonic()) > 0:
            time.sleep(min(left, self.lease_seconds / 3))
            if not self._renew(held):
                return

    def _announce(self, task: StepTask, report: AttemptReport, decision: Decision) -> None:
        if report.succeeded:
            self.on_event(
                "step_succeeded", step=task.step, attempt=task.try_number, duration=report.duration
            )
            return
        self.on_event(
            "attempt_failed",
            step=task.step,
            attempt=task.try_number,
            outcome=str(report.outcome),
            error=report.error,
            error_type=report.error_type,
            duration=report.duration,
        )
        if decision.next is Next.RETRY:
            self.on_event("retry_scheduled", step=task.step, delay=decision.delay or 0.0)

    def _result(self, held: HeldRun, duration: float) -> ForegroundResult:
        run = Run.objects.get(id=held.claim.run_id)
        results = dict(
            Step.objects.filter(run_id=run.id, status=StepStatus.SUCCEEDED)
            .order_by("position")
            .values_list("name", "result")
        )
        self.on_event("run_finished", status=run.status, error=run.error, run_id=str(run.id))
        return ForegroundResult(
            success=run.status == RunStatus.SUCCEEDED,
            run_id=run.id,
            duration=duration,
            results=results,
            error=run.error,
            status=run.status,
        )


def resume(run_id: uuid.UUID | str, *, on_event: EventHandler | None = None) -> ForegroundResult:
    """Execute a pending or interrupted run now, in this process, from its first
    unfinished step (`orbit resume RUN_ID`)."""
    run = recover_run(run_id)
    if run.status != RunStatus.PENDING:
        raise InvalidTransition(f"Run {run.id} is {run.status}: {run.error or 'nothing to resume'}")
    return ForegroundRunner(run.pipeline.definition, on_event=on_event).resume(run.id)
