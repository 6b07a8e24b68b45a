"""Changes to runs that the admin, dashboard, API, CLI and schedules all make the same way.

Each takes the `actor` it acts for (orbit.core.audit) and records it in the same transaction.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models.functions import Now

from orbit.core.audit import Actor, event_values, record
from orbit.core.exceptions import (
    InvalidTransition,
    OrbitError,
    RunNotFound,
    UnknownPipeline,
)
from orbit.core.ids import uuid7
from orbit.core.limits import validate_metadata
from orbit.core.models import AuditAction, AuditEvent
from pipelines.models import Pipeline
from runs.creating import insert_run
from runs.models import Run, RunStatus, Step, StepStatus
from runs.notify import notify_runnable

logger = logging.getLogger(__name__)

PRIORITY_RANGE = (-1_000_000, 1_000_000)


def get_pipeline(name: str) -> Pipeline:
    """The pipeline row called `name`; rows missing for code definitions are created first."""
    try:
        return Pipeline.objects.get(name=name)
    except Pipeline.DoesNotExist:
        from pipelines.sync import sync_pipelines

        sync_pipelines()
    try:
        return Pipeline.objects.get(name=name)
    except Pipeline.DoesNotExist:
        known = ", ".join(Pipeline.objects.values_list("name", flat=True)) or "none"
        raise UnknownPipeline(f"Unknown pipeline {name!r}. Known pipelines: {known}") from None


def run_create(
    pipeline: str | Pipeline,
    *,
    metadata: dict[str, Any] | None = None,
    priority: int = 0,
    queue: str = "default",
    idempotency_key: str | None = None,
    scheduled_for: datetime | None = None,
    actor: Actor | None = None,
) -> Run:
    """Queue a run: validated, its steps laid out, committed, and announced to workers.

    With an `idempotency_key`, a repeated call returns the run the first one created.
    """
    row = pipeline if isinstance(pipeline, Pipeline) else get_pipeline(pipeline)
    definition = row.code
    if definition is None:
        raise UnknownPipeline(
            f"Pipeline {row.name!r} runs definition {row.definition!r}, which no longer "
            "exists in code; it cannot start runs"
        )
    metadata = validate_metadata(row.merged_metadata(validate_metadata(metadata)))
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise OrbitError(f"priority must be an integer, not {priority!r}")
    if not PRIORITY_RANGE[0] <= priority <= PRIORITY_RANGE[1]:
        raise OrbitError(f"priority must be between {PRIORITY_RANGE[0]} and {PRIORITY_RANGE[1]}")
    if idempotency_key is not None:
        existing = Run.objects.filter(pipeline=row, idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    run = Run(
        id=uuid7(),
        pipeline=row,
        metadata=metadata,
        priority=priority,
        queue=queue,
        idempotency_key=idempotency_key,
        scheduled_for=scheduled_for,
    )
    changes: dict[str, Any] = {"pipeline": row.name, "priority": priority, "queue": queue}
    if scheduled_for is not None:
        changes["scheduled_for"] = scheduled_for.isoformat()
    audit = event_values(
        AuditAction.RUN_CREATED, run, actor=actor, changes=changes, label=run_label(run)
    )
    try:
        if connection.vendor == "postgresql":  # one statement: runs/creating.py
            insert_run(run, [s.name for s in definition.steps], audit)
        else:
            with transaction.atomic():
                run.save(force_insert=True)
                Step.objects.bulk_create(
                    Step(run=run, name=s.name, position=i) for i, s in enumerate(definition.steps)
                )
                AuditEvent.objects.create(**audit)
                notify_runnable()
    except IntegrityError:
        if idempotency_key is not None:
            return Run.objects.get(pipeline=row, idempotency_key=idempotency_key)
        raise
    logger.info(
        "Run %s of %s created",
        run.id,
        row.name,
        extra={"event": "run_created", "run_id": str(run.id), "pipeline": row.name},
    )
    return run


def get_run(run_id: uuid.UUID | str) -> Run:
    try:
        return Run.objects.select_related("pipeline").get(id=run_id)
    except (Run.DoesNotExist, ValueError, TypeError):
        raise RunNotFound(f"No run with id {run_id}") from None
    except Exception as exc:  # a malformed UUID raises ValidationError on some backends
        if type(exc).__name__ == "ValidationError":
            raise RunNotFound(f"No run with id {run_id}") from None
        raise


def run_label(run: Run) -> str:
    """How the audit trail names a run: its pipeline and its id."""
    return f"{run.pipeline.name} run {run.id}"


def run_retry(run_id: uuid.UUID | str, *, actor: Actor | None = None) -> Run:
    """Queue a failed or cancelled run again at its first unfinished step.

    Succeeded steps keep their results; unfinished ones get a fresh retry budget; the
    history of earlier attempts is kept.
    """
    run = get_run(run_id)
    with transaction.atomic():
        updated = Run.objects.filter(
            id=run.id, status__in=[RunStatus.FAILED, RunStatus.CANCELLED]
        ).update(
            status=RunStatus.PENDING,
            available_at=Now(),
            finished_at=None,
            error="",
            worker=None,
            lease_expires_at=None,
            current_step="",
            interruptions=0,
        )
        if not updated:
            run.refresh_from_db()
            raise InvalidTransition(
                f"Run {run.id} is {run.status}; only failed or cancelled runs can be retried"
            )
        Step.objects.filter(run=run).exclude(status=StepStatus.SUCCEEDED).update(
            status=StepStatus.PENDING, failures=0, error="", error_type="", traceback=""
        )
        record(
            AuditAction.RUN_RETRIED,
            run,
            actor=actor,
            changes={"status": [run.status, RunStatus.PENDING.value]},
            label=run_label(run),
        )
        notify_runnable()
    logger.info(
        "Run %s queued for retry",
        run.id,
        extra={"event": "run_retried", "run_id": str(run.id), "pipeline": run.pipeline.name},
    )
    run.refresh_from_db()
    return run


def run_cancel(
    run_id: uuid.UUID | str,
    reason: str = "Cancelled by an operator",
    *,
    actor: Actor | None = None,
) -> Run:
    """Cancel a pending or running run. A running run's worker notices at its next lease
    renewal (a third of the lease at most), kills the step and records the attempt."""
    run = get_run(run_id)
    with transaction.atomic():
        updated = Run.objects.filter(
            id=run.id, status__in=[RunStatus.PENDING, RunStatus.RUNNING]
        ).update(status=RunStatus.CANCELLED, finished_at=Now(), error=reason, lease_expires_at=None)
        if updated:
            record(
                AuditAction.RUN_CANCELLED,
                run,
                actor=actor,
                changes={"status": [run.status, RunStatus.CANCELLED.value]},
                label=run_label(run),
            )
    if not updated:
        run.refresh_from_db()
        raise InvalidTransition(
            f"Run {run.id} is {run.status}; only pending or running runs can be cancelled"
        )
    logger.info(
        "Run %s cancelled",
        run.id,
        extra={"event": "run_cancelled", "run_id": str(run.id), "pipeline": run.pipeline.name},
    )
    run.refresh_from_db()
    return run


def run_resume(run_id: uuid.UUID | str, *, actor: Actor | None = None) -> Run:
    """Put an interrupted run (its worker died) back in the queue now; a pending run stays
    queued. runs.recovery holds the rules; this adds the audit event to its transaction."""
    from runs.recovery import recover_run  # recovery imports this module

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
