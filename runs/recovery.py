"""Recovery: runs whose worker died are found by their expired lease and put back in the
queue, to resume at their first unfinished step with context rebuilt from the database.

Public API: `find_interrupted()`, `recover_interrupted(auto_resume=...)`,
`recover_run(run_id)` and `resume(run_id)`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.db.models import F, Min
from django.db.models.functions import Now

from orbit.core.conf import orbit_settings
from orbit.core.exceptions import InvalidTransition
from runs.lifecycle import get_run, record_recovered
from runs.models import AttemptOutcome, Run, RunStatus, Step, StepAttempt, StepStatus, Worker
from runs.notify import notify_runnable

if TYPE_CHECKING:
    from runs.executor import ExecutionResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InterruptedRun:
    run_id: uuid.UUID
    pipeline: str
    step: str
    worker: str
    expired_seconds_ago: float
    reason: str


@dataclass
class RecoveryReport:
    interrupted: list[InterruptedRun] = field(default_factory=list)
    recovered: list[uuid.UUID] = field(default_factory=list)
    quarantined: list[uuid.UUID] = field(default_factory=list)


def db_now() -> datetime:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT now()")
            return cursor.fetchone()[0]  # type: ignore[no-any-return]
    from django.utils import timezone

    # SQLite's clock is the host's clock: Now() there is strftime('now') too.
    return timezone.now()


def find_interrupted() -> list[InterruptedRun]:
    """Running runs whose lease has expired by the database clock, and why they count."""
    now = db_now()
    dead = set(Worker.objects.dead().values_list("id", flat=True))
    rows = (
        Run.objects.interrupted().select_related("pipeline", "worker").order_by("lease_expires_at")
    )
    found = []
    for run in rows:
        expired = (now - run.lease_expires_at).total_seconds() if run.lease_expires_at else 0.0
        if run.worker is None:
            why = "its lease expired and no worker holds it"
        elif run.worker.state == "stopped":
            why = f"worker {run.worker.name} stopped without handing it back"
        elif run.worker_id in dead:
            why = f"worker {run.worker.name} stopped sending heartbeats (dead)"
        else:
            why = f"worker {run.worker.name} is alive but stopped renewing this run's lease"
        found.append(
            InterruptedRun(
                run_id=run.id,
                pipeline=run.pipeline.name,
                step=run.current_step or "-",
                worker=run.worker.name if run.worker else "-",
                expired_seconds_ago=max(expired, 0.0),
                reason=f"lease expired {max(expired, 0.0):.1f} s ago: {why}",
            )
        )
    return found


def recover_interrupted(*, auto_resume: bool = False) -> RecoveryReport:
    """Report interrupted runs; with `auto_resume`, put them back in the queue.

    One atomic update per sweep: with several workers sweeping at once each run is
    recovered exactly once (PostgreSQL: SKIP LOCKED; SQLite: the IMMEDIATE transaction).
    """
    report = RecoveryReport(interrupted=find_interrupted() if not auto_resume else [])
    if not auto_resume:
        return report
    with transaction.atomic():
        rows = _take_interrupted()
        for run_id, step_name, worker_id, interruptions in rows:
            _record_interruption(run_id, step_name, worker_id, interruptions, report)
        record_recovered(report.recovered)  # the audit trail, in the sweep's transaction
        if rows:
            notify_runnable()
    for run_id in report.recovered:
        logger.warning(
            "Recovered interrupted run %s",
            run_id,
            extra={"event": "run_recovered", "run_id": str(run_id)},
        )
    return report


_PG_TAKE = f"""
WITH expired AS (
    SELECT id, worker_id FROM {Run._meta.db_table}
    WHERE status = 'running' AND lease_expires_at < now()
    FOR UPDATE SKIP LOCKED
)
UPDATE {Run._meta.db_table} AS r
SET status = 'pending', worker_id = NULL, lease_expires_at = NULL,
    interruptions = r.interruptions + 1
FROM expired
WHERE r.id = expired.id
RETURNING r.id, r.current_step, expired.worker_id, r.interruptions
"""


# A recovered run keeps its `available_at` (it was due when it was claimed), so it resumes
# ahead of the runs queued after it instead of waiting behind the whole queue.
def _take_interrupted(
    run_id: uuid.UUID | None = None,
) -> list[tuple[uuid.UUID, str, int | None, int]]:
    if connection.vendor == "postgresql" and run_id is None:
        with connection.cursor() as cursor:
            cursor.execute(_PG_TAKE)
            return [tuple(row) for row in cursor.fetchall()]
    candidates = Run.objects.interrupted().select_for_update(skip_locked=True)
    if run_id is not None:
        candidates = candidates.filter(id=run_id)
    rows = list(candidates.values_list("id", "current_step", "worker_id", "interruptions"))
    if rows:
        Run.objects.filter(id__in=[r[0] for r in rows]).update(
            status=RunStatus.PENDING,
            worker=None,
            lease_expires_at=None,
            interruptions=F("interruptions") + 1,
        )
    return [(r[0], r[1], r[2], r[3] + 1) for r in rows]


def _record_interruption(
    run_id: uuid.UUID,
    step_name: str,
    worker_id: int | None,
    interruptions: int,
    report: RecoveryReport,
) -> None:
    """The interrupted step's attempt is recorded as interrupted, not as its failure."""
    step = Step.objects.filter(run_id=run_id, name=step_name).first() if step_name else None
    if step is not None and step.status == StepStatus.RUNNING:
        StepAttempt.objects.create(
            step=step,
            run_id=run_id,
            number=step.attempts + 1,
            outcome=AttemptOutcome.INTERRUPTED,
            error="The worker running this step stopped renewing its lease (it died, froze or lost the database)",
            error_type="orbit.core.exceptions.LeaseLost",
            started_at=step.started_at,
            worker_id=worker_id,
        )
        Step.objects.filter(id=step.id).update(
            status=StepStatus.PENDING, attempts=F("attempts") + 1
        )
    limit = orbit_settings.max_interruptions
    if interruptions > limit:
        where = f"in step {step_name!r}" if step_name else "before its first step"
        error = (
            f"Quarantined: the run interrupted its worker {interruptions} times, last {where} "
            f"(ORBIT_MAX_INTERRUPTIONS={limit})"
        )
        Run.objects.filter(id=run_id).update(
            status=RunStatus.FAILED, finished_at=Now(), error=error
        )
        if step is not None:
            Step.objects.filter(id=step.id).update(status=StepStatus.FAILED, error=error)
        report.quarantined.append(run_id)
        logger.error(
            "Run %s quarantined: %s",
            run_id,
            error,
            extra={"event": "run_quarantined", "run_id": str(run_id)},
        )
    else:
        report.recovered.append(run_id)


def next_lease_expiry_in() -> float | None:
    """Seconds until the earliest running lease expires (None: nothing is running)."""
    earliest = Run.objects.running().aggregate(at=Min("lease_expires_at"))["at"]
    if earliest is None:
        return None
    return float((earliest - db_now()).total_seconds())


def recover_run(run_id: uuid.UUID | str) -> Run:
    """Put one interrupted run back in the queue now (the admin's and API's "resume")."""
    run = get_run(run_id)
    _refuse_unless_resumable(run)
    if run.status == RunStatus.RUNNING:
        report = RecoveryReport()
        with transaction.atomic():
            rows = _take_interrupted(run.id)
            for rid, step_name, worker_id, interruptions in rows:
                _record_interruption(rid, step_name, worker_id, interruptions, report)
            notify_runnable()
        if not rows:
            run.refresh_from_db()
            _refuse_unless_resumable(run)
    run.refresh_from_db()
    return run


def resume(run_id: uuid.UUID | str, *, on_event: object = None) -> ExecutionResult:
    """Execute a pending or interrupted run now, in this process, from its first
    unfinished step (`orbit resume RUN_ID`)."""
    from runs.executor import PipelineExecutor

    run = recover_run(run_id)
    if run.status != RunStatus.PENDING:
        raise InvalidTransition(f"Run {run.id} is {run.status}: {run.error or 'nothing to resume'}")
    return PipelineExecutor(run.pipeline.definition, on_event=on_event).resume(run.id)  # type: ignore[arg-type]


def _refuse_unless_resumable(run: Run) -> None:
    if run.status == RunStatus.PENDING:
        return
    if run.is_finished:
        hint = (
            " (use retry for a failed or cancelled run)"
            if run.status != RunStatus.SUCCEEDED
            else ""
        )
        raise InvalidTransition(f"Run {run.id} already finished: it {run.status}{hint}")
    if not Run.objects.interrupted().filter(id=run.id).exists():
        holder = run.worker.name if run.worker else "a foreground process"
        raise InvalidTransition(
            f"Run {run.id} is running on {holder} and its lease is live "
            f"(expires {run.lease_expires_at:%Y-%m-%d %H:%M:%S} UTC); it is not interrupted"
        )
