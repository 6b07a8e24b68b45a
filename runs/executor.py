"""Run a pipeline in the foreground (`orbit run`, `orbit resume`, programs), durably.

The run is stored like any other and driven through the same calls the worker uses
(runs/execution.py), one step attempt at a time in a child process. The difference: this
process keeps holding the run through backoff waits (renewing its lease) instead of
releasing it. If it dies, the lease runs out and a worker resumes the run.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models.functions import Now

from orbit.core.conf import orbit_settings
from orbit.core.exceptions import InvalidTransition, PipelineDisabled
from pipelines.definition import Pipeline as Definition
from pipelines.models import Pipeline
from runs import leases
from runs.child import StepProcess
from runs.claiming import Claim, claim_run
from runs.execution import Decision, Next, StepTask, begin, hand_back, record
from runs.lifecycle import get_pipeline, run_create
from runs.models import Run, RunStatus, Step, StepStatus, db_now_plus

EventHandler = Callable[..., None]


@dataclass
class ExecutionResult:
    success: bool
    run_id: uuid.UUID
    duration: float
    results: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    status: str = ""


class PipelineExecutor:
    """`PipelineExecutor(definition).execute(metadata=...)`: run now, wait, get results.

    `on_event(name, **data)` hears `step_started`, `step_succeeded`, `attempt_failed`,
    `retry_scheduled`, `run_finished`; the CLI prints them.
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
    ) -> ExecutionResult:
        row = self._row()
        if not row.enabled:
            raise PipelineDisabled(f"Pipeline {row.name!r} is disabled; enable it to run it")
        with transaction.atomic():
            run = run_create(row, metadata=metadata, priority=priority)
            # Held from the start (no worker sees it before this commits); if this
            # process dies, the lease expires and recovery hands the run to the workers.
            Run.objects.filter(id=run.id).update(
                status=RunStatus.RUNNING,
                attempt=1,
                lease_expires_at=db_now_plus(self.lease_seconds),
                started_at=Now(),
            )
        claim = Claim(run.id, 1, None, row.name, row.definition, run.metadata)
        return self._drive(claim)

    def resume(self, run_id: uuid.UUID) -> ExecutionResult:
        claim = claim_run(run_id, worker_id=None, lease_seconds=self.lease_seconds)
        if claim is None:
            raise InvalidTransition(f"Run {run_id} could not be claimed: another process took it")
        return self._drive(claim)

    def _drive(self, claim: Claim) -> ExecutionResult:
        started = time.monotonic()
        process: StepProcess | None = None
        decision = begin(claim, lease_seconds=self.lease_seconds)
        try:
            while decision.next is Next.STEP:
                task = decision.task
                assert task is not None
                if process is None or not process.is_alive():
                    process = StepProcess()
                self.on_event(
                    "step_started", step=task.step, attempt=task.attempt, run_id=task.run_id
                )
                report = process.run(
                    task, tick=lambda: self._renew(claim), tick_every=self.lease_seconds / 3
                )
                if report is None:
                    decision = Decision(Next.LOST)
                    break
                if report.outcome != "succeeded":
                    process = None if not process.is_alive() else process
                decision = record(
                    claim, task, report, lease_seconds=self.lease_seconds, release_retries=False
                )
                self._announce(task, report, decision)
                if decision.next is Next.RETRY:
                    self._wait(claim, decision.delay or 0.0)
                    decision = begin(claim, lease_seconds=self.lease_seconds)
        except BaseException:
            # Ctrl-C or a crash of this process: give the run back so workers resume it.
            hand_back(claim, None, None)
            raise
        finally:
            if process is not None:
                process.stop()
        return self._result(claim, decision, time.monotonic() - started)

    def _renew(self, claim: Claim) -> bool:
        return claim.run_id in leases.renew([claim], lease_seconds=self.lease_seconds)

    def _wait(self, claim: Claim, delay: float) -> None:
        """Sleep through a backoff delay while keeping the lease."""
        until = time.monotonic() + delay
        while (left := until - time.monotonic()) > 0:
            time.sleep(min(left, self.lease_seconds / 3))
            if not self._renew(claim):
                return

    def _announce(self, task: StepTask, report: Any, decision: Decision) -> None:
        if report.outcome == "succeeded":
            self.on_event(
                "step_succeeded", step=task.step, attempt=task.attempt, duration=report.duration
            )
        else:
            self.on_event(
                "attempt_failed",
                step=task.step,
                attempt=task.attempt,
                outcome=str(report.outcome),
                error=report.error,
                duration=report.duration,
            )
            if decision.next is Next.RETRY:
                self.on_event("retry_scheduled", step=task.step, delay=decision.delay or 0.0)

    def _result(self, claim: Claim, decision: Decision, duration: float) -> ExecutionResult:
        run = Run.objects.get(id=claim.run_id)
        results = dict(
            Step.objects.filter(run_id=claim.run_id, status=StepStatus.SUCCEEDED)
            .order_by("position")
            .values_list("name", "result")
        )
        self.on_event("run_finished", status=run.status, error=run.error, run_id=str(run.id))
        return ExecutionResult(
            success=run.status == RunStatus.SUCCEEDED,
            run_id=run.id,
            duration=duration,
            results=results,
            error=run.error,
            status=run.status,
        )
