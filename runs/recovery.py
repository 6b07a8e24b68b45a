"""Recovery: runs whose worker died are found by their expired lease and put back in the
queue, to resume at their first unfinished step with context rebuilt from the database.

A sweep first marks the workers it finds dead (when, and the runs they held), so their
rows say so after their runs have moved on; an operator may then forget them.

Public API: `find_interrupted()`, `recover_interrupted(auto_resume=...)`,
`recover_run(run_id)` and `worker_forget(worker_id)`; `orbit resume RUN_ID` is
runs/foreground.py `resume`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models.functions import Now

from orbit.core.audit import Actor, record
from orbit.core.clock import db_now
from orbit.core.conf import orbit_settings
from orbit.core.exceptions import InvalidTransition, WorkerNotFound
from orbit.core.models import AuditAction
from runs import signals
from runs.enqueueing import run_label
from runs.lifecycle import get_run
from runs.models import Run, RunStatus, Worker, WorkerState
from runs.store import store
from runs.store.records import DeadWorker, Interrupted

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
    dead_workers: list[DeadWorker] = field(default_factory=list)


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

    One atomic statement per sweep (runs/store `take_interrupted`): with several workers
    sweeping at once each run is recovered exactly once.
    """
    report = RecoveryReport(interrupted=find_interrupted() if not auto_resume else [])
    if not auto_resume:
        return report
    # Before their runs are taken back: a dead worker's row says what it held.
    report.dead_workers = store().mark_dead_workers(silent_for=orbit_settings.lease_seconds)
    _log_deaths(report.dead_workers)
    with transaction.atomic():
        taken = store().take_interrupted(max_interruptions=orbit_settings.max_interruptions)
        _sort(taken, report)
        signals.send(signals.interrupted_events(taken))
        record_recovered(report.recovered)  # the audit trail, in the sweep's transaction
        if report.recovered:
            store().announce()
    _log(taken)
    return report


def _sort(taken: list[Interrupted], report: RecoveryReport) -> None:
    for run in taken:
        (report.quarantined if run.quarantined else report.recovered).append(run.run_id)


def _log_deaths(dead: list[DeadWorker]) -> None:
    for worker in dead:
        held = ", ".join(
            f"{r['run_id']} ({r['pipeline']}: {r['step'] or '-'})" for r in worker.held
        )
        logger.warning(
            "Worker %s died: no heartbeat since %s; it held %s",
            worker.name,
            f"{worker.last_heartbeat:%Y-%m-%d %H:%M:%S}",
            held or "no runs",
            extra={
                "event": "worker_died",
                "worker": worker.name,
                "runs": [r["run_id"] for r in worker.held],
            },
        )


def _log(taken: list[Interrupted]) -> None:
    for run in taken:
        if run.quarantined:
            logger.error(
                "Run %s quarantined: %s",
                run.run_id,
                run.error,
                extra={"event": "run_quarantined", "run_id": str(run.run_id)},
            )
        else:
            logger.warning(
                "Recovered interrupted run %s",
                run.run_id,
                extra={"event": "run_recovered", "run_id": str(run.run_id)},
            )


def recover_run(run_id: uuid.UUID | str) -> Run:
    """Put one interrupted run back in the queue now (the admin's and API's "resume")."""
    run = get_run(run_id)
    _refuse_unless_resumable(run)
    if run.status == RunStatus.RUNNING:
        with transaction.atomic():
            taken = store().take_interrupted(
                max_interruptions=orbit_settings.max_interruptions, run_id=run.id
            )
            if taken:
                store().announce()
            signals.send(signals.interrupted_events(taken))
        _log(taken)
        if not taken:
            run.refresh_from_db()
            _refuse_unless_resumable(run)
    run.refresh_from_db()
    return run


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


def run_resume(run_id: uuid.UUID | str, *, actor: Actor | None = None) -> Run:
    """Put an interrupted run (its worker died) back in the queue now, audited; a pending
    run stays queued."""
    with transaction.atomic():
        before = get_run(run_id)
        run = recover_run(before.id)
        record(
            AuditAction.RUN_RESUMED,
            run,
            actor=actor,
            changes={"status": [before.status, run.status]},
            label=run_label(run),
        )
    logger.info(
        "Run %s resumed",
        run.id,
        extra={"event": "run_resumed", "run_id": str(run.id), "pipeline": run.pipeline.name},
    )
    return run


def worker_forget(worker_id: int, *, actor: Actor | None = None) -> Worker:
    """Take a dead (or stopped) worker off the lists and out of the health figures,
    audited; its row stays, so the attempts it ran still name it. A live one is refused."""
    with transaction.atomic():
        worker = Worker.objects.select_for_update().filter(id=worker_id).first()
        if worker is None:
            raise WorkerNotFound(f"No worker with id {worker_id}")
        if worker.forgotten_at is not None:
            return worker
        if Worker.objects.alive().filter(id=worker.id).exists():
            age = (db_now() - worker.last_heartbeat).total_seconds()
            raise InvalidTransition(
                f"Worker {worker.name} is alive (its last heartbeat was {age:.0f} s ago); "
                "only a dead or stopped worker can be forgotten"
            )
        Worker.objects.filter(id=worker.id).update(forgotten_at=Now())
        record(
            AuditAction.WORKER_FORGOTTEN,
            worker,
            actor=actor,
            changes={
                "state": "dead" if worker.state != WorkerState.STOPPED else worker.state,
                "last_heartbeat": worker.last_heartbeat.isoformat(),
                "held_at_death": [r.get("run_id") for r in worker.held_at_death or []],
            },
        )
    logger.info(
        "Worker %s forgotten",
        worker.name,
        extra={"event": "worker_forgotten", "worker": worker.name},
    )
    worker.refresh_from_db()
    return worker


def record_recovered(run_ids: list[uuid.UUID], *, actor: Actor | None = None) -> None:
    """Audit interrupted runs put back in the queue by a recovery sweep (a worker's, or
    `orbit recover --auto-resume`); call it in the sweep's transaction."""
    for run in Run.objects.filter(id__in=run_ids).select_related("pipeline"):
        record(
            AuditAction.RUN_RESUMED,
            run,
            actor=actor,
            changes={"status": [RunStatus.RUNNING.value, run.status], "interrupted": True},
            label=run_label(run),
        )
