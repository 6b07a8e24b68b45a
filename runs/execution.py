"""Driving a claimed run one step attempt at a time, for any claimant.

The worker, the foreground runner and `orbit resume` all go through the same calls:
`begin` (start the planner's next step of a claimed run), `record` / `record_many` (commit
attempts' outcomes and say what comes next) and `hand_back` (return a run unfinished).
What happens after an attempt is decided by `settle`, a pure function of the report, the
step's retry policy and the planner; the store carries the decision out, fenced, so a
claimant that lost its lease writes nothing.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import IntegrityError

from orbit.core import tracing
from orbit.core.conf import orbit_settings
from orbit.core.exceptions import error_text
from orbit.core.redaction import redact_text
from pipelines.definition import Pipeline as Definition
from pipelines.definition import StepDefinition, registry
from runs import attempts, planner, signals
from runs.attempts import AttemptReport, StepTask
from runs.models import FAILED_OUTCOMES, AttemptOutcome, RunStatus, StepStatus
from runs.store import store
from runs.store import transitions as t
from runs.store.records import AttemptRecord, Claim, Outcome, StepRow, StepStart
from runs.webhooks.recording import transaction_for_events

logger = logging.getLogger(__name__)


class Next(enum.Enum):
    STEP = "step"  # the run continues with `task`
    RETRY = "retry"  # the step is retried after `delay` (released to the queue, or held)
    HANDED_BACK = "handed_back"  # back in the queue unfinished, for any worker
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


@dataclass
class HeldRun:
    """A claimed run as its claimant tracks it: the claim, and its steps as they stand.

    Only the claimant writes a held run's steps, so the rows it committed itself are the
    truth for as long as the fence holds; `refresh` reads them again after a commit whose
    acknowledgement was lost.
    """

    claim: Claim
    steps: dict[str, StepRow] = field(default_factory=dict)
    #: When this claimant took the run (monotonic): the duration its outcome line reports.
    claimed_at: float = field(default_factory=time.monotonic)
    #: The claimant's span of this run (runs/tracing.py `run_span`); None: not traced.
    span: Any = None

    def __post_init__(self) -> None:
        if not self.steps:
            self.steps = {row.name: row for row in self.claim.steps}

    @property
    def statuses(self) -> dict[str, str]:
        return {name: row.status for name, row in self.steps.items()}

    def prev_results(self) -> dict[str, Any]:
        return {
            name: row.result
            for name, row in self.steps.items()
            if row.status == StepStatus.SUCCEEDED
        }

    def update(self, name: str, **changes: Any) -> None:
        self.steps[name] = replace(self.steps[name], **changes)

    def refresh(self) -> None:
        self.steps = {row.name: row for row in store().read_steps(self.claim.run_id)}


def _timeout(step: StepDefinition) -> float:
    return step.timeout if step.timeout is not None else orbit_settings.default_step_timeout


def _task(held: HeldRun, definition: Definition, nxt: planner.NextStep, step_id: int) -> StepTask:
    row = held.steps.get(nxt.name)
    return StepTask(
        run_id=str(held.claim.run_id),
        pipeline=held.claim.pipeline,
        definition=held.claim.definition,
        step=nxt.name,
        step_id=step_id,
        index=nxt.index,
        metadata=held.claim.metadata,
        prev_results=held.prev_results(),
        try_number=(row.attempts if row else 0) + 1,
        failures=row.failures if row else 0,
        timeout=_timeout(definition.steps[nxt.index]),
    )


def begin(held: HeldRun, *, lease_seconds: float) -> Decision:
    """Start the planner's next step of a claimed run (or finish a run with none left)."""
    claim = held.claim
    definition = registry.find(claim.definition)
    if definition is None:
        # A deploy without this pipeline's code: never fail a run for that, leave it to a
        # worker that has it (a claim that knows its definitions never takes it).
        return hand_back(held, None, None, why=f"definition {claim.definition!r} is not here")
    nxt = planner.plan(definition.step_names, held.statuses)
    if isinstance(nxt, planner.Finished):
        return _commit_one(held, Outcome(held=claim.held, run=t.SUCCEED), Decision(Next.SUCCEEDED))
    if isinstance(nxt, planner.Unrunnable):
        return hand_back(held, None, None, why=nxt.reason)
    row = held.steps.get(nxt.name)
    if claim.started == nxt.name and row is not None:
        step_id = row.id  # the claim started it already: the usual case, no write
    else:
        started = held.steps.get(claim.started) if claim.started else None
        start = StepStart(
            name=nxt.name,
            step_id=row.id if row else None,
            position=nxt.position,
            undo_step_id=started.id if started else None,
            undo_status=started.status if started else "",
        )
        step_id_or_none = store().start_step(claim.held, start, lease_seconds=lease_seconds)
        if step_id_or_none is None:
            return settle_lost(held)
        step_id = step_id_or_none
        if row is None:
            held.steps[nxt.name] = StepRow(step_id, nxt.name, StepStatus.RUNNING, None, 0, 0)
        held.claim = replace(claim, started=nxt.name)
    task = _task(held, definition, nxt, step_id)
    _log_step_started(task)
    return Decision(Next.STEP, task=task)


@dataclass(frozen=True)
class Settlement:
    """What an attempt's end leads to: the outcome to commit and the decision it carries
    out, once committed. `start` is a step that needs a row of its own before it runs."""

    outcome: Outcome
    decision: Decision
    start: planner.NextStep | None = None


def settle(
    held: HeldRun,
    task: StepTask,
    report: AttemptReport,
    *,
    lease_seconds: float,
    continue_run: bool = True,
    release_retries: bool = True,
) -> Settlement:
    """Decide what follows an attempt; writes nothing.

    `continue_run=False` (shutting down) hands the run back after a success instead of
    starting its next step; `release_retries=False` (the foreground runner) keeps the run
    through the backoff wait instead of releasing it to the queue.
    """
    definition = registry.get(task.definition)
    fence = held.claim.held
    record = _attempt(held, task, report)
    timed = {"running_time": report.duration}  # the run's running time adds the attempt's
    if report.succeeded:
        result = json.loads(report.result_json) if report.result_json is not None else None
        step_values = {
            "result": result,
            "result_json": report.result_json,
            "duration": report.duration,
        }
        statuses = {**held.statuses, task.step: StepStatus.SUCCEEDED.value}
        nxt = planner.plan(definition.step_names, statuses)
        base = Outcome(
            held=fence,
            run=t.SUCCEED,
            run_values=timed,
            step_id=task.step_id,
            step=t.STEP_SUCCEED,
            step_values=step_values,
            attempt=record,
        )
        if isinstance(nxt, planner.Finished):
            return Settlement(base, Decision(Next.SUCCEEDED))
        if isinstance(nxt, planner.Unrunnable) or not continue_run:
            resume_at = nxt.name if isinstance(nxt, planner.NextStep) else ""
            return Settlement(
                replace(base, run=t.HAND_BACK, run_values={"current_step": resume_at, **timed}),
                Decision(Next.HANDED_BACK, delay=0.0),
            )
        row = held.steps.get(nxt.name)
        following = replace(
            base,
            run=t.CONTINUE,
            run_values={"current_step": nxt.name, "lease_expires_at": lease_seconds, **timed},
            start_step_id=row.id if row is not None else None,
        )
        if row is None:  # the definition gained this step: its row is made before it starts
            return Settlement(following, Decision(Next.STEP), start=nxt)
        after = HeldRun(held.claim, dict(held.steps))
        after.update(task.step, status=StepStatus.SUCCEEDED.value, result=result)
        return Settlement(
            following, Decision(Next.STEP, task=_task(after, definition, nxt, row.id))
        )

    step = definition.step_named(task.step)
    counts = report.outcome in FAILED_OUTCOMES
    failures = task.failures + (1 if counts else 0)
    delay = step.retry.next_delay(failures) if report.retryable else None
    if not counts:  # interrupted or cancelled: not the step's fault, retry now
        delay = 0.0
    step_values = {
        "duration": report.duration,
        "failures": failures,
        "error": report.error,
        "error_type": report.error_type,
        "traceback": report.traceback,
    }
    if delay is None:
        error = _run_error(task, report)
        return Settlement(
            Outcome(
                held=fence,
                run=t.FAIL,
                run_values={"error": error, **timed},
                step_id=task.step_id,
                step=t.STEP_FAIL,
                step_values=step_values,
                attempt=record,
            ),
            Decision(Next.FAILED, error=error),
        )
    if release_retries:
        run, run_values = t.RELEASE, {"available_at": delay, "current_step": task.step, **timed}
    else:
        run, run_values = t.HOLD, {"lease_expires_at": lease_seconds + delay, **timed}
    return Settlement(
        Outcome(
            held=fence,
            run=run,
            run_values=run_values,
            step_id=task.step_id,
            step=t.STEP_RETRY,
            step_values=step_values,
            attempt=replace(record, backoff_delay=delay),
        ),
        Decision(Next.RETRY, delay=delay),
    )


def _attempt(
    held: HeldRun,
    task: StepTask,
    report: AttemptReport,
    *,
    outcome: AttemptOutcome | None = None,
    backoff: float | None = None,
) -> AttemptRecord:
    """The attempt as the history records it (its outcome, unless told otherwise)."""
    return AttemptRecord(
        step_id=task.step_id,
        number=task.try_number,
        outcome=outcome or report.outcome,
        duration=report.duration,
        error=report.error,
        error_type=report.error_type,
        traceback=report.traceback,
        backoff_delay=backoff,
        worker_id=held.claim.worker_id,
    )


def _run_error(task: StepTask, report: AttemptReport) -> str:
    """Why the run failed. It counts the step's attempts as its history lists them (the
    interrupted ones and those before an operator's retry included)."""
    error = error_text(report.error_type, report.error)
    if not report.retryable:
        return f"Step {task.step!r} failed and cannot be retried: {error}"
    n = task.try_number
    return f"Step {task.step!r} failed after {n} attempt{'s' if n != 1 else ''}: {error}"


def record(
    held: HeldRun,
    task: StepTask,
    report: AttemptReport,
    *,
    lease_seconds: float,
    continue_run: bool = True,
    release_retries: bool = True,
) -> Decision:
    """Commit one attempt's outcome: the run's and the step's new state and the attempt,
    in one transaction."""
    return record_many(
        [(held, task, report)],
        lease_seconds=lease_seconds,
        continue_run=continue_run,
        release_retries=release_retries,
    )[0]


def record_many(
    items: Sequence[tuple[HeldRun, StepTask, AttemptReport]],
    *,
    lease_seconds: float,
    continue_run: bool = True,
    release_retries: bool = True,
) -> list[Decision]:
    """`record` for several attempts at once, committed together (one statement on
    PostgreSQL); each decision in the order of `items`."""
    items = [(held, task, _without_secrets(report)) for held, task, report in items]
    settlements = [
        settle(
            held,
            task,
            report,
            lease_seconds=lease_seconds,
            continue_run=continue_run,
            release_retries=release_retries,
        )
        for held, task, report in items
    ]
    try:
        # One transaction for the outcome and the webhook deliveries its events owe
        # (none opened while no endpoint is enabled: the commit stays one statement).
        with transaction_for_events():
            committed = store().commit([s.outcome for s in settlements])
            signals.send(
                [
                    event
                    for (held, task, _), settlement in zip(items, settlements, strict=True)
                    if held.claim.run_id in committed
                    for event in signals.outcome_events(settlement.outcome, task.step)
                ]
            )
    except IntegrityError:
        # Some of these were committed already (a commit whose acknowledgement was lost
        # with the connection): carry on from the database's state, one run at a time.
        logger.warning(
            "Attempts already recorded; reading the runs again",
            extra={"event": "attempt_duplicate"},
        )
        return [
            _replay(held, task, report, lease_seconds, continue_run, release_retries)
            for held, task, report in items
        ]
    decisions = []
    for (held, task, report), settlement in zip(items, settlements, strict=True):
        with tracing.using(held.span):  # its log lines carry the run span's ids
            decisions.append(
                _carry_out(held, task, report, settlement, lease_seconds)
                if held.claim.run_id in committed
                else settle_lost(held, task, report)
            )
    return decisions


def _carry_out(
    held: HeldRun,
    task: StepTask,
    report: AttemptReport,
    settlement: Settlement,
    lease_seconds: float,
) -> Decision:
    """Bring the held run's steps up to date with the committed outcome, and go on. A run
    that ended is let go by its claimant, which does not read its steps again."""
    decision = settlement.decision
    if decision.next not in _ENDED:
        _follow(held, task, report, settlement)
    _log_recorded(held, task, report, decision)
    if decision.next is Next.RETRY and settlement.outcome.run is t.RELEASE:
        store().announce(decision.delay or 0.0)
    if decision.next is Next.HANDED_BACK:
        store().announce()
    if settlement.start is not None:  # a step the definition gained: it needs its row first
        return begin(held, lease_seconds=lease_seconds)
    if decision.task is not None:
        _log_step_started(decision.task)
    return decision


def _follow(held: HeldRun, task: StepTask, report: AttemptReport, settlement: Settlement) -> None:
    """The held run's steps and claim as the committed outcome left them, for a run that
    goes on: the attempt's step succeeded (or is pending again, to be retried), and the
    step the run is at now is the next one, started by this commit, or none."""
    decision = settlement.decision
    if report.succeeded:
        held.update(
            task.step,
            status=StepStatus.SUCCEEDED.value,
            result=settlement.outcome.step_values["result"],
            attempts=task.try_number,
        )
    else:
        held.update(
            task.step,
            status=StepStatus.PENDING.value,
            attempts=task.try_number,
            failures=task.failures + (1 if report.outcome in FAILED_OUTCOMES else 0),
        )
    if decision.task is not None:
        held.update(decision.task.step, status=StepStatus.RUNNING.value)
    held.claim = replace(held.claim, started=decision.task.step if decision.task else "")


def _replay(
    held: HeldRun,
    task: StepTask,
    report: AttemptReport,
    lease_seconds: float,
    continue_run: bool,
    release_retries: bool,
) -> Decision:
    held.refresh()
    row = held.steps.get(task.step)
    if row is not None and row.attempts >= task.try_number:
        # This attempt is in already: go on from the database's state.
        status = store().status_under(held.claim.held)
        if status in _SETTLED:
            return Decision(_SETTLED[status])
        if status != RunStatus.RUNNING:
            return settle_lost(held)
        running = next((r.name for r in held.steps.values() if r.status == StepStatus.RUNNING), "")
        held.claim = replace(held.claim, started=running)
        return begin(held, lease_seconds=lease_seconds)
    return record(
        held,
        task,
        report,
        lease_seconds=lease_seconds,
        continue_run=continue_run,
        release_retries=release_retries,
    )


#: The decisions after which a claimant lets the run go, finished.
_ENDED = frozenset({Next.SUCCEEDED, Next.FAILED})

#: What a run's status says about an outcome that was committed before its
#: acknowledgement was lost.
_SETTLED = {
    RunStatus.SUCCEEDED.value: Next.SUCCEEDED,
    RunStatus.FAILED.value: Next.FAILED,
    RunStatus.PENDING.value: Next.HANDED_BACK,
    RunStatus.CANCELLED.value: Next.CANCELLED,
}


def _commit_one(held: HeldRun, outcome: Outcome, decision: Decision) -> Decision:
    with transaction_for_events():
        if held.claim.run_id not in store().commit([outcome]):
            return settle_lost(held)
        signals.send(signals.outcome_events(outcome))
    if decision.next in (Next.SUCCEEDED, Next.FAILED):
        _log_run_finished(held, decision)
    return decision


def _without_secrets(report: AttemptReport) -> AttemptReport:
    """Errors and tracebacks are stored with secret-looking values masked
    (ORBIT_REDACT_KEYS): no step needs them, and every page and endpoint shows them."""
    if not report.error and not report.traceback:
        return report
    return replace(report, error=redact_text(report.error), traceback=redact_text(report.traceback))


def hand_back(
    held: HeldRun,
    task: StepTask | None,
    report: AttemptReport | None,
    *,
    why: str = "",
) -> Decision:
    """Return a held run to the queue unfinished, without spending its retry budget
    (shutdown, a step stopped through no fault of its own, a run this process cannot
    run). It resumes at the step it was at."""
    resume_at = task.step if task is not None else held.claim.started
    outcome = Outcome(held=held.claim.held, run=t.HAND_BACK, run_values={"current_step": resume_at})
    started = held.steps.get(held.claim.started) if task is None and held.claim.started else None
    if started is not None:  # the claim started it, nothing ran: as it was before
        outcome = replace(outcome, step_id=started.id, step=t.STEP_UNSTART)
    if task is not None:
        report = _without_secrets(report or attempts.interrupted())
        outcome = replace(
            outcome,
            run_values={**outcome.run_values, "running_time": report.duration},
            step_id=task.step_id,
            step=t.STEP_INTERRUPT,
            attempt=_attempt(held, task, report, outcome=AttemptOutcome.INTERRUPTED, backoff=0.0),
        )
    if held.claim.run_id not in store().commit([outcome]):
        return settle_lost(held, task, report)
    store().announce()
    logger.info(
        "Run %s handed back to the queue%s",
        held.claim.run_id,
        f": {why}" if why else "",
        extra={"event": "run_handed_back", "run_id": str(held.claim.run_id)},
    )
    return Decision(Next.HANDED_BACK, delay=0.0)


def settle_lost(
    held: HeldRun, task: StepTask | None = None, report: AttemptReport | None = None
) -> Decision:
    """The fence refused a write: tell a cancellation (record it) from a lost lease."""
    if store().status_under(held.claim.held) == RunStatus.CANCELLED:
        if task is not None:
            record_cancelled(held, task, report)
        return Decision(Next.CANCELLED)
    logger.warning(
        "Lost run %s: another claimant holds it now; dropping it without writing",
        held.claim.run_id,
        extra={"event": "lease_lost", "run_id": str(held.claim.run_id), "fence": held.claim.fence},
    )
    return Decision(Next.LOST)


def record_cancelled(held: HeldRun, task: StepTask, report: AttemptReport | None) -> None:
    """Record the attempt an operator's cancellation stopped (fenced on the cancelled run)."""
    ended = attempts.cancelled()
    report = _without_secrets(report) if report is not None else ended
    if store().record_cancelled(
        held.claim.held,
        AttemptRecord(
            step_id=task.step_id,
            number=task.try_number,
            outcome=AttemptOutcome.CANCELLED,
            duration=report.duration,
            error=report.error
            if report.outcome == AttemptOutcome.CANCELLED and report.error
            else ended.error,
            error_type=ended.error_type,
            worker_id=held.claim.worker_id,
        ),
    ):
        logger.info(
            "Run %s cancelled during step %s",
            held.claim.run_id,
            task.step,
            extra={"event": "step_cancelled", "run_id": str(held.claim.run_id), "step": task.step},
        )


# -- logging --------------------------------------------------------------------------


def _log_step_started(task: StepTask) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "Step %s of run %s started (attempt %s)",
            task.step,
            task.run_id,
            task.try_number,
            extra={
                "event": "step_started",
                "run_id": task.run_id,
                "step": task.step,
                "attempt": task.try_number,
            },
        )


def _log_recorded(held: HeldRun, task: StepTask, report: AttemptReport, decision: Decision) -> None:
    if report.succeeded:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "Step %s of run %s succeeded in %.3fs",
                task.step,
                task.run_id,
                report.duration,
                extra={
                    "event": "step_succeeded",
                    "run_id": task.run_id,
                    "step": task.step,
                    "attempt": task.try_number,
                    "duration": report.duration,
                },
            )
    else:
        logger.warning(
            "Step %s of run %s: attempt %s %s: %s",
            task.step,
            task.run_id,
            task.try_number,
            report.outcome,
            report.error,
            extra={
                "event": "attempt_failed",
                "run_id": task.run_id,
                "step": task.step,
                "attempt": task.try_number,
                "outcome": str(report.outcome),
            },
        )
        if decision.next is Next.RETRY:
            logger.info(
                "Step %s of run %s retries in %.2fs",
                task.step,
                task.run_id,
                decision.delay or 0,
                extra={
                    "event": "retry_scheduled",
                    "run_id": task.run_id,
                    "step": task.step,
                    "attempt": task.try_number,
                    "delay": decision.delay,
                },
            )
    if decision.next in (Next.SUCCEEDED, Next.FAILED):
        _log_run_finished(held, decision)


def _log_run_finished(held: HeldRun, decision: Decision) -> None:
    """The one line a successful run writes at INFO (a failed run's is an ERROR): its
    outcome, and how long since this worker claimed it."""
    level = logging.INFO if decision.next is Next.SUCCEEDED else logging.ERROR
    if logger.isEnabledFor(level):
        duration = time.monotonic() - held.claimed_at
        run_id = str(held.claim.run_id)  # once, for the message and the field
        logger.log(
            level,
            "Run %s of %s %s in %.3fs",
            run_id,
            held.claim.pipeline,
            decision.next.value,
            duration,
            extra={
                "event": "run_finished",
                "run_id": run_id,
                "status": decision.next.value,
                "duration": round(duration, 6),
            },
        )
