"""The engine's spans: one per run attempt (a claim, under one fence) and one per step
attempt, named and attributed the same way by the worker and the foreground runner
(docs/TRACING.md). Each function is a no-op returning None while tracing is off.

A run span's parent is the trace context stored with the run when it was enqueued
(Run.trace_context), so the request that queued a run and the run are one trace; a step
span is a child of its run span, and its context goes to the child process with the
step (`StepTask.trace_context`), where the step's own spans nest under it (`step_span`, or
plain `opentelemetry.trace`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from orbit.core import tracing
from orbit.core.redaction import redact_text
from runs.attempts import AttemptReport, StepTask
from runs.store.records import Claim


def run_span(claim: Claim) -> Any:
    """`orbit.run <pipeline>`, from the claim to the moment its claimant lets it go."""
    if not tracing.enabled():
        return None
    return tracing.start_span(
        f"orbit.run {claim.pipeline}",
        parent=claim.trace_context,
        kind="CONSUMER",
        attributes={
            "orbit.pipeline": claim.pipeline,
            "orbit.run_id": str(claim.run_id),
            "orbit.attempt": claim.fence,
        },
    )


def end_run_span(span: Any, outcome: str, error: str = "") -> None:
    """The claimant let the run go: succeeded, failed, retry (released), handed_back,
    lost, cancelled."""
    if span is not None:
        tracing.end_span(
            span,
            attributes={"orbit.outcome": outcome},
            error=redact_text(error) if outcome == "failed" else "",
            error_type="failed" if outcome == "failed" and not error else "",
        )


def attempt_span(task: StepTask, run: Any) -> Any:
    """`orbit.step <step>` for one attempt, a child of the run span `run`."""
    if run is None:
        return None
    return tracing.start_span(
        f"orbit.step {task.step}",
        parent=run,
        attributes={
            "orbit.pipeline": task.pipeline,
            "orbit.run_id": task.run_id,
            "orbit.step": task.step,
            "orbit.step_attempt": task.try_number,
        },
    )


def end_attempt_span(span: Any, report: AttemptReport | None, outcome: str = "") -> None:
    """The attempt ended as `report` says (or, without one, as `outcome` says). Its error
    and traceback are masked as they are before they are stored: spans leave Orbit."""
    if span is None:
        return
    if report is None:
        tracing.end_span(span, attributes={"orbit.outcome": outcome})
        return
    tracing.end_span(
        span,
        attributes={"orbit.outcome": str(report.outcome), "orbit.duration": report.duration},
        error="" if report.succeeded else redact_text(report.error),
        error_type="" if report.succeeded else report.error_type,
        stacktrace=redact_text(report.traceback),
    )


@contextmanager
def step_span(name: str, **attributes: Any) -> Iterator[Any]:
    """For step code: a span nested under the step's span, current for the block, ended
    (with the error recorded if the block raises) when it leaves; yields the span, or
    None while tracing is off. Plain `opentelemetry.trace.get_tracer(...)` works as well.

        with step_span("fetch invoice", **{"invoice.id": 42}):
            ...
    """
    if not tracing.enabled():
        yield None
        return
    span = tracing.start_span(name, attributes=attributes)
    try:
        with tracing.using(span):  # records an exception leaving the block on the span
            yield span
    finally:
        tracing.end_span(span)
