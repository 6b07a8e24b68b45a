"""One try at a step: what a child process is given (`StepTask`) and how it ended
(`AttemptReport`). Every report is built here, whoever saw the attempt end: the child
(it returned or raised), or its supervisor (it timed out, crashed, or was stopped)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from traceback import format_exception
from typing import Any

from orbit.core.exceptions import (
    LeaseLost,
    PermanentFailure,
    RunCancelled,
    StepCrashed,
    StepInterrupted,
    StepTimeout,
    type_path,
)
from pipelines.context import StepResult
from runs.models import AttemptOutcome


@dataclass(frozen=True)
class StepTask:
    """Everything a child process needs to run one attempt; pickled across the pipe."""

    run_id: str
    pipeline: str
    definition: str
    step: str
    step_id: int
    index: int  # the step's place in the definition, 0-based
    metadata: dict[str, Any]
    prev_results: dict[str, Any]
    try_number: int  # this attempt's number for this step, 1-based
    failures: int  # failed attempts so far: the spent retry budget
    timeout: float
    #: The step span's W3C context, current while the step runs; empty while not tracing.
    trace_context: dict[str, str] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}:{self.step}"


@dataclass(frozen=True)
class AttemptReport:
    """How an attempt ended."""

    outcome: AttemptOutcome
    duration: float
    result_json: str | None = None
    error: str = ""
    error_type: str = ""
    traceback: str = ""
    retryable: bool = True

    @property
    def succeeded(self) -> bool:
        return self.outcome is AttemptOutcome.SUCCEEDED


class StopReason(enum.Enum):
    """Why a supervisor stops a step's process before it is done."""

    TIMEOUT = "timeout"  # it ran past its deadline
    LOST = "lost"  # the run was cancelled, or another claimant holds it now
    SHUTDOWN = "shutdown"  # the worker is stopping and the grace period is over


def succeeded(result_json: str, duration: float) -> AttemptReport:
    return AttemptReport(
        outcome=AttemptOutcome.SUCCEEDED, duration=duration, result_json=result_json
    )


def reported_failure(task: StepTask, result: StepResult, duration: float) -> AttemptReport:
    """The step returned `StepResult(success=False, ...)` instead of raising."""
    return AttemptReport(
        outcome=AttemptOutcome.FAILED,
        duration=duration,
        error=result.error or f"Step {task.step!r} reported failure",
        error_type=type_path(StepResult),
        retryable=result.retryable,
    )


def raised(task: StepTask, error: BaseException, duration: float) -> AttemptReport:
    """The step raised: any exception, SystemExit and KeyboardInterrupt included (they end
    the attempt, not the child). `PermanentFailure` is not retried."""
    if isinstance(error, SystemExit):
        message = f"Step {task.step!r} raised SystemExit({error.code!r})"
    else:
        message = str(error) or type(error).__name__
    return AttemptReport(
        outcome=AttemptOutcome.FAILED,
        duration=duration,
        error=message,
        error_type=type_path(type(error)),
        traceback="".join(format_exception(error)),
        retryable=not isinstance(error, PermanentFailure),
    )


def timed_out(task: StepTask, duration: float) -> AttemptReport:
    return AttemptReport(
        outcome=AttemptOutcome.TIMED_OUT,
        duration=duration,
        error=f"Step {task.step!r} ran past its {task.timeout:g} s timeout and was stopped",
        error_type=type_path(StepTimeout),
    )


def crashed(task: StepTask, duration: float, exit_description: str) -> AttemptReport:
    return AttemptReport(
        outcome=AttemptOutcome.CRASHED,
        duration=duration,
        error=f"The process running step {task.step!r} {exit_description}",
        error_type=type_path(StepCrashed),
    )


def stopped(reason: StopReason, duration: float) -> AttemptReport:
    """A step its supervisor stopped through no fault of its own."""
    if reason is StopReason.SHUTDOWN:
        return AttemptReport(
            outcome=AttemptOutcome.INTERRUPTED,
            duration=duration,
            error="Stopped: the worker shut down before the step finished",
            error_type=type_path(StepInterrupted),
        )
    return AttemptReport(
        outcome=AttemptOutcome.CANCELLED,
        duration=duration,
        error="Stopped: the run was cancelled or taken over",
        error_type=type_path(LeaseLost),
    )


def cancelled(duration: float = 0.0) -> AttemptReport:
    """The attempt an operator's cancellation ended, as the history records it."""
    return AttemptReport(
        outcome=AttemptOutcome.CANCELLED,
        duration=duration,
        error="Run cancelled by an operator",
        error_type=type_path(RunCancelled),
    )


def interrupted(duration: float = 0.0) -> AttemptReport:
    """An attempt given back unfinished (a shutdown, or the foreground runner stopping)."""
    return stopped(StopReason.SHUTDOWN, duration)
