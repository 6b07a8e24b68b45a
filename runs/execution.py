"""One step attempt at a time, against the database, for any claimant.

The worker, the foreground executor and `orbit resume` all drive runs through the same
three calls: `begin` (first unfinished step of a claimed run), `record` (commit an
attempt's outcome and say what comes next) and `hand_back` (return a run unfinished).
Every write is fenced: it only happens while the run is still `running` under the
claimant's attempt number, so a claimant that lost its lease writes nothing.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, connection, models, transaction
from django.db.models import F
from django.db.models.functions import Now

from orbit.core.conf import orbit_settings
from orbit.core.redaction import redact_text
from pipelines.definition import Pipeline as Definition
from pipelines.definition import StepDefinition, registry
from runs.batch_commit import Success, commit_successes
from runs.claiming import Claim, StepRow
from runs.models import (
    FAILED_OUTCOMES,
    AttemptOutcome,
    Run,
    RunStatus,
    Step,
    StepAttempt,
    StepStatus,
    db_now_plus,
)
from runs.notify import notify_runnable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepTask:
    """Everything a child process needs to run one attempt; pickled across the pipe."""

    run_id: str
    pipeline: str
    definition: str
    step: str
    step_id: int
    position: int
    metadata: dict[str, Any]
    prev_results: dict[str, Any]
    attempt: int  # this attempt's number for this step, 1-based
    failures: int  # failed attempts so far (the spent retry budget)
    timeout: float

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}:{self.step}"


@dataclass(frozen=True)
class AttemptReport:
    """How an attempt ended, as the child (or the supervisor, for kills) saw it."""

    outcome: AttemptOutcome
    duration: float
    result_json: str | None = None
    error: str = ""
    error_type: str = ""
    traceback: str = ""
    retryable: bool = True
    logs: list[dict[str, Any]] = field(default_factory=list)


class Next(enum.Enum):
    STEP = "step"  # the run continues with `task`
    RETRY = "retry"  # released; the step is retried after `delay`
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LOST = "lost"  # the claimant no longer holds the run; nothing was written
    CANCELLED = "cancelled"  # an operator cancelled the run meanwhile


@dataclass(frozen=True)
class Decision:
    next: Next
    task: StepTask | None = None
    delay: float | None = None
    error: str = ""

    @property
    def holds_run(self) -> bool:
        return self.next is Next.STEP


def _fenced(claim: Claim) -> models.QuerySet[Run]:
    return Run.objects.filter(id=claim.run_id, attempt=claim.attempt, status=RunStatus.RUNNING)


def _definition(claim: Claim) -> Definition:
    return registry.get(claim.definition)


def _timeout(step: StepDefinition) -> float:
    return step.timeout if step.timeout is not None else orbit_settings.default_step_timeout


def begin(claim: Claim, *, lease_seconds: float) -> Decision:
    """Start the first unfinished step of a claimed run (or finish a run with none left)."""
    try:
        definition = _definition(claim)
    except Exception as exc:
        return _fail_run(claim, f"Pipeline definition {claim.definition!r} is not available: {exc}")
    rows: dict[str, Any]
    if claim.steps is not None:
        rows = {row.name: vars(row) for row in claim.steps}
    else:
        rows = {
            row["name"]: row
            for row in Step.objects.filter(run_id=claim.run_id).values(
                "id", "name", "status", "result", "attempts", "failures"
            )
        }
    started = claim.started_step
    prev_results = {
        name: row["result"] for name, row in rows.items() if row["status"] == StepStatus.SUCCEEDED
    }
    for position, step in enumerate(definition.steps):
        row = rows.get(step.name)
        if row is not None and row["status"] == StepStatus.SUCCEEDED:
            continue
        if row is None:  # the definition gained a step since the run was created
            created = Step.objects.create(
                run_id=claim.run_id, name=step.name, position=1000 + position
            )
            row = {"id": created.id, "attempts": 0, "failures": 0}
        task = StepTask(
            run_id=str(claim.run_id),
            pipeline=claim.pipeline,
            definition=claim.definition,
            step=step.name,
            step_id=row["id"],
            position=position,
            metadata=claim.metadata,
            prev_results=prev_results,
            attempt=row["attempts"] + 1,
            failures=row["failures"],
            timeout=_timeout(step),
        )
        if started is None or started.id != task.step_id:  # the claim did not start it
            with transaction.atomic():
                if not _fenced(claim).update(
                    current_step=step.name, lease_expires_at=db_now_plus(lease_seconds)
                ):
                    return settle_lost(claim)
                _unstart(claim, started)
                Step.objects.filter(id=task.step_id).update(
                    status=StepStatus.RUNNING, started_at=Now()
                )
        _log_step_started(task)
        return Decision(Next.STEP, task=task)
    _unstart(claim, started)
    return _succeed_run(claim)


def _unstart(claim: Claim, started: StepRow | None) -> None:
    """Undo the claim's guess of the step to start, when the definition says otherwise
    (steps added or reordered since the run was created)."""
    if started is not None:
        Step.objects.filter(id=started.id, run_id=claim.run_id).update(
            status=started.status, started_at=None
        )


def record(
    claim: Claim,
    task: StepTask,
    report: AttemptReport,
    *,
    lease_seconds: float,
    continue_run: bool = True,
    release_retries: bool = True,
) -> Decision:
    """Commit one attempt's outcome, with the step's status and result, in one transaction.

    `continue_run=False` (shutting down) hands the run back after a success instead of
    starting its next step; `release_retries=False` (foreground) keeps holding the run
    through the backoff wait instead of releasing it to the queue.
    """
    report = _without_secrets(report)
    try:
        with transaction.atomic():
            if report.outcome == AttemptOutcome.SUCCEEDED:
                decision = _record_success(claim, task, report, lease_seconds, continue_run)
            else:
                decision = _record_failure(claim, task, report, lease_seconds, release_retries)
            if decision.next is Next.LOST:
                transaction.set_rollback(True)
    except IntegrityError:
        # The same attempt was committed already (a commit whose acknowledgement was
        # lost with the connection): nothing to add; carry on from the database's state.
        logger.warning(
            "Attempt already recorded", extra={"event": "attempt_duplicate", "run_id": task.run_id}
        )
        # The claim's snapshot of the steps predates that commit: read them afresh.
        return begin(replace(claim, steps=None), lease_seconds=lease_seconds)
    if decision.next in (Next.LOST, Next.CANCELLED):
        return settle_lost(claim, task, report)
    _log_recorded(task, report, decision)
    if decision.next is Next.RETRY and release_retries:
        notify_runnable(decision.delay or 0)
    if decision.next is Next.STEP and decision.task is not None:
        _log_step_started(decision.task)
    return decision


def record_many(
    items: Sequence[tuple[Claim, StepTask, AttemptReport]],
    *,
    lease_seconds: float,
    continue_run: bool = True,
) -> list[Decision]:
    """`record` for several attempts at once, in order; on PostgreSQL the plain successes
    among them are committed together in one statement (runs/batch_commit.py)."""
    decisions: list[Decision | None] = [None] * len(items)
    fast: list[tuple[int, Success, StepTask | None]] = []
    for index, (claim, task, report) in enumerate(items):
        plan = _plain_success(claim, task, report, continue_run)
        if plan is None:
            decisions[index] = record(
                claim, task, report, lease_seconds=lease_seconds, continue_run=continue_run
            )
        else:
            fast.append((index, *plan))
    if fast:
        try:
            held = commit_successes(
                [success for _, success, _ in fast],
                worker_id=items[fast[0][0]][0].worker_id,
                lease_seconds=lease_seconds,
            )
        except IntegrityError:
            # Some of these were committed already (the acknowledgement was lost with
            # the connection): record them one by one, which sorts that out per run.
            held = None
        for index, success, next_task in fast:
            claim, task, report = items[index]
            if held is None:
                decision = record(
                    claim, task, report, lease_seconds=lease_seconds, continue_run=continue_run
                )
            elif success.run_id not in held:
                decision = settle_lost(claim, task, report)
            else:
                decision = (
                    Decision(Next.STEP, task=next_task) if next_task else Decision(Next.SUCCEEDED)
                )
                _log_recorded(task, report, decision)
                if next_task is not None:
                    _log_step_started(next_task)
            decisions[index] = decision
    return [d for d in decisions if d is not None]


def _plain_success(
    claim: Claim, task: StepTask, report: AttemptReport, continue_run: bool
) -> tuple[Success, StepTask | None] | None:
    """The batch commit of a success and the step that follows it, when nothing about it
    needs the general path: PostgreSQL, no log records, the next step known from the claim."""
    if (
        report.outcome != AttemptOutcome.SUCCEEDED
        or report.logs
        or claim.steps is None
        or connection.vendor != "postgresql"
    ):
        return None
    try:
        definition = _definition(claim)
    except Exception:
        return None
    steps = definition.steps
    if task.position >= len(steps) or steps[task.position].name != task.step:
        return None
    next_task: StepTask | None = None
    if task.position + 1 < len(steps):
        following = steps[task.position + 1]
        row = next((s for s in claim.steps if s.name == following.name), None)
        if row is None or row.status == StepStatus.SUCCEEDED or not continue_run:
            return None
        result = json.loads(report.result_json) if report.result_json is not None else None
        next_task = _following_task(task, result, following, row.id, row.attempts, row.failures)
    success = Success(
        run_id=claim.run_id,
        fence=claim.attempt,
        step_id=task.step_id,
        number=task.attempt,
        result_json=report.result_json,
        duration=report.duration,
        next_step_id=next_task.step_id if next_task else None,
        next_step=next_task.step if next_task else "",
    )
    return success, next_task


def _following_task(
    task: StepTask,
    result: Any,
    following: StepDefinition,
    step_id: int,
    attempts: int,
    failures: int,
) -> StepTask:
    """The task for the step after `task`, which succeeded with `result`."""
    return replace(
        task,
        step=following.name,
        step_id=step_id,
        position=task.position + 1,
        prev_results={**task.prev_results, task.step: result},
        attempt=attempts + 1,
        failures=failures,
        timeout=_timeout(following),
    )


def _without_secrets(report: AttemptReport) -> AttemptReport:
    """Errors and tracebacks are stored with secret-looking values masked
    (ORBIT_REDACT_KEYS): no step needs them, and every page and endpoint shows them."""
    if not report.error and not report.traceback:
        return report
    return replace(report, error=redact_text(report.error), traceback=redact_text(report.traceback))


def _record_success(
    claim: Claim, task: StepTask, report: AttemptReport, lease_seconds: float, continue_run: bool
) -> Decision:
    definition = _definition(claim)
    result = json.loads(report.result_json) if report.result_json is not None else None
    steps = definition.steps
    following = steps[task.position + 1] if task.position + 1 < len(steps) else None
    next_task: StepTask | None = None
    # The next step by the definition already succeeded (steps reordered since the run
    # was created): commit this one, then let begin() find the first unfinished step.
    reroute = False
    if following is not None:
        row = (
            Step.objects.filter(run_id=claim.run_id, name=following.name)
            .values("id", "status", "attempts", "failures")
            .first()
        )
        if row is None:  # the definition gained this step after the run was created
            created = Step.objects.create(
                run_id=claim.run_id, name=following.name, position=1000 + task.position + 1
            )
            row = {"id": created.id, "status": StepStatus.PENDING, "attempts": 0, "failures": 0}
        if row["status"] == StepStatus.SUCCEEDED:
            reroute = True
        elif continue_run:
            next_task = _following_task(
                task, result, following, row["id"], row["attempts"], row["failures"]
            )
    fenced = _fenced(claim)
    if next_task is not None or (reroute and continue_run):
        updated = fenced.update(
            current_step=next_task.step if next_task else "",
            lease_expires_at=db_now_plus(lease_seconds),
        )
    elif following is not None:  # shutting down: hand the run back at its next step
        updated = fenced.update(
            status=RunStatus.PENDING, worker=None, lease_expires_at=None, current_step=""
        )
    else:  # that was the last step: the run is done, shutting down or not
        updated = fenced.update(
            status=RunStatus.SUCCEEDED, finished_at=Now(), lease_expires_at=None, current_step=""
        )
    if not updated:
        return Decision(Next.LOST)
    _write_attempt(claim, task, report, outcome=AttemptOutcome.SUCCEEDED, delay=None)
    Step.objects.filter(id=task.step_id).update(
        status=StepStatus.SUCCEEDED,
        result=result,
        finished_at=Now(),
        duration=report.duration,
        attempts=F("attempts") + 1,
        error="",
        error_type="",
        traceback="",
        **_logs_update(task, report),
    )
    if next_task is not None:
        Step.objects.filter(id=next_task.step_id).update(
            status=StepStatus.RUNNING, started_at=Now()
        )
        return Decision(Next.STEP, task=next_task)
    if reroute and continue_run:
        return begin(replace(claim, steps=None), lease_seconds=lease_seconds)
    if following is not None:
        notify_runnable()
        return Decision(Next.RETRY, delay=0.0)  # handed back: resumes at its next step
    return Decision(Next.SUCCEEDED)


def _record_failure(
    claim: Claim, task: StepTask, report: AttemptReport, lease_seconds: float, release: bool
) -> Decision:
    definition = _definition(claim)
    step = definition.steps[task.position]
    counts = report.outcome in FAILED_OUTCOMES
    failures = task.failures + (1 if counts else 0)
    delay = step.retry.next_delay(failures) if report.retryable else None
    if not counts:  # interrupted: not the step's fault, retry now with the same budget
        delay = 0.0
    fenced = _fenced(claim)
    if delay is None:
        error = _run_error(task, report, failures)
        updated = fenced.update(
            status=RunStatus.FAILED,
            finished_at=Now(),
            lease_expires_at=None,
            error=error,
            current_step="",
        )
        step_status = StepStatus.FAILED
        decision = Decision(Next.FAILED, error=error)
    elif release:
        updated = fenced.update(
            status=RunStatus.PENDING,
            available_at=db_now_plus(delay),
            worker=None,
            lease_expires_at=None,
            current_step="",
        )
        step_status = StepStatus.PENDING
        decision = Decision(Next.RETRY, delay=delay)
    else:
        updated = fenced.update(lease_expires_at=db_now_plus(lease_seconds + delay))
        step_status = StepStatus.PENDING
        decision = Decision(Next.RETRY, delay=delay)
    if not updated:
        return Decision(Next.LOST)
    _write_attempt(
        claim, task, report, outcome=report.outcome, delay=delay if delay is not None else None
    )
    Step.objects.filter(id=task.step_id).update(
        status=step_status,
        finished_at=Now(),
        duration=report.duration,
        attempts=F("attempts") + 1,
        failures=failures,
        error=report.error,
        error_type=report.error_type,
        traceback=report.traceback,
        **_logs_update(task, report),
    )
    return decision


def _run_error(task: StepTask, report: AttemptReport, failures: int) -> str:
    if not report.retryable:
        return f"Step {task.step!r} failed and cannot be retried: {report.error}"
    return f"Step {task.step!r} failed after {failures} attempt{'s' if failures != 1 else ''}: {report.error}"


def _write_attempt(
    claim: Claim,
    task: StepTask,
    report: AttemptReport,
    *,
    outcome: AttemptOutcome | str,
    delay: float | None,
) -> None:
    StepAttempt.objects.create(
        step_id=task.step_id,
        run_id=claim.run_id,
        number=task.attempt,
        outcome=outcome,
        error=report.error,
        error_type=report.error_type,
        traceback=report.traceback,
        started_at=models.ExpressionWrapper(
            Now() - timedelta(seconds=report.duration), output_field=models.DateTimeField()
        ),
        duration=report.duration,
        backoff_delay=delay,
        worker_id=claim.worker_id,
    )


def _logs_update(task: StepTask, report: AttemptReport) -> dict[str, Any]:
    """The step's logs with this attempt's records appended (read inside the fenced
    transaction, so no other writer can interleave); nothing to write when there are none."""
    if not report.logs:
        return {}
    existing = Step.objects.filter(id=task.step_id).values_list("logs", flat=True).first() or []
    records = [{**record, "attempt": task.attempt} for record in report.logs]
    return {"logs": (list(existing) + records)[-orbit_settings.max_log_records :]}


def hand_back(claim: Claim, task: StepTask | None, report: AttemptReport | None) -> bool:
    """Return a held run to the queue, unfinished, without spending its retry budget
    (graceful shutdown, or the supervisor stopping a step that was not at fault)."""
    with transaction.atomic():
        updated = _fenced(claim).update(
            status=RunStatus.PENDING,
            worker=None,
            lease_expires_at=None,
            current_step="",
        )
        if not updated:
            return False
        if task is not None:
            report = report or AttemptReport(outcome=AttemptOutcome.INTERRUPTED, duration=0.0)
            _write_attempt(claim, task, report, outcome=AttemptOutcome.INTERRUPTED, delay=0.0)
            Step.objects.filter(id=task.step_id).update(
                status=StepStatus.PENDING, attempts=F("attempts") + 1, **_logs_update(task, report)
            )
        notify_runnable()
    logger.info(
        "Run %s handed back to the queue",
        claim.run_id,
        extra={"event": "run_handed_back", "run_id": str(claim.run_id)},
    )
    return True


def settle_lost(
    claim: Claim, task: StepTask | None = None, report: AttemptReport | None = None
) -> Decision:
    """The fence refused a write: tell a cancellation (record it) from a lost lease."""
    status = (
        Run.objects.filter(id=claim.run_id, attempt=claim.attempt)
        .values_list("status", flat=True)
        .first()
    )
    if status == RunStatus.CANCELLED:
        if task is not None:
            record_cancelled(claim, task, report)
        return Decision(Next.CANCELLED)
    logger.warning(
        "Lost run %s: another claimant holds it now; dropping it without writing",
        claim.run_id,
        extra={"event": "lease_lost", "run_id": str(claim.run_id), "attempt": claim.attempt},
    )
    return Decision(Next.LOST)


def record_cancelled(claim: Claim, task: StepTask, report: AttemptReport | None) -> None:
    """Record the attempt an operator's cancellation stopped (fenced on the cancelled run)."""
    report = report or AttemptReport(outcome=AttemptOutcome.CANCELLED, duration=0.0)
    with transaction.atomic():
        if not Run.objects.filter(
            id=claim.run_id, attempt=claim.attempt, status=RunStatus.CANCELLED
        ).exists():
            return
        if StepAttempt.objects.filter(step_id=task.step_id, number=task.attempt).exists():
            return
        _write_attempt(
            claim,
            task,
            replace(report, error=report.error or "Run cancelled by an operator"),
            outcome=AttemptOutcome.CANCELLED,
            delay=None,
        )
        Step.objects.filter(id=task.step_id, status=StepStatus.RUNNING).update(
            status=StepStatus.PENDING, attempts=F("attempts") + 1
        )
    logger.info(
        "Run %s cancelled during step %s",
        claim.run_id,
        task.step,
        extra={"event": "step_cancelled", "run_id": str(claim.run_id), "step": task.step},
    )


def _succeed_run(claim: Claim) -> Decision:
    if not _fenced(claim).update(
        status=RunStatus.SUCCEEDED, finished_at=Now(), lease_expires_at=None, current_step=""
    ):
        return settle_lost(claim)
    logger.info(
        "Run %s succeeded",
        claim.run_id,
        extra={"event": "run_finished", "run_id": str(claim.run_id), "status": "succeeded"},
    )
    return Decision(Next.SUCCEEDED)


def _fail_run(claim: Claim, error: str) -> Decision:
    if not _fenced(claim).update(
        status=RunStatus.FAILED,
        finished_at=Now(),
        lease_expires_at=None,
        error=error,
        current_step="",
    ):
        return settle_lost(claim)
    logger.error(
        "Run %s failed: %s",
        claim.run_id,
        error,
        extra={"event": "run_finished", "run_id": str(claim.run_id), "status": "failed"},
    )
    return Decision(Next.FAILED, error=error)


def _log_step_started(task: StepTask) -> None:
    logger.info(
        "Step %s of run %s started (attempt %s)",
        task.step,
        task.run_id,
        task.attempt,
        extra={
            "event": "step_started",
            "run_id": task.run_id,
            "step": task.step,
            "attempt": task.attempt,
        },
    )


def _log_recorded(task: StepTask, report: AttemptReport, decision: Decision) -> None:
    ids = {"run_id": task.run_id, "step": task.step, "attempt": task.attempt}
    if report.outcome == AttemptOutcome.SUCCEEDED:
        logger.info(
            "Step %s of run %s succeeded in %.3fs",
            task.step,
            task.run_id,
            report.duration,
            extra={"event": "step_succeeded", **ids, "duration": report.duration},
        )
    else:
        logger.warning(
            "Step %s of run %s: attempt %s %s: %s",
            task.step,
            task.run_id,
            task.attempt,
            report.outcome,
            report.error,
            extra={"event": "attempt_failed", **ids, "outcome": str(report.outcome)},
        )
    if decision.next is Next.RETRY and report.outcome != AttemptOutcome.SUCCEEDED:
        logger.info(
            "Step %s of run %s retries in %.2fs",
            task.step,
            task.run_id,
            decision.delay or 0,
            extra={"event": "retry_scheduled", **ids, "delay": decision.delay},
        )
    if decision.next in (Next.SUCCEEDED, Next.FAILED):
        level = logging.INFO if decision.next is Next.SUCCEEDED else logging.ERROR
        logger.log(
            level,
            "Run %s %s",
            task.run_id,
            decision.next.value,
            extra={"event": "run_finished", "run_id": task.run_id, "status": decision.next.value},
        )
