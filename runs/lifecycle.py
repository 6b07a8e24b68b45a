"""Changes to runs that the admin, dashboard, API, CLI and schedules all make the same way.

Each takes the `actor` it acts for (orbit.audit) and records it in the same transaction.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction

from orbit.core.audit import Actor, changed_keys, event_values, record
from orbit.core.exceptions import (
    InvalidTransition,
    OrbitError,
    PipelineDisabled,
    RunNotFound,
    UnknownPipeline,
)
from orbit.core.ids import uuid7
from orbit.core.limits import validate_metadata
from orbit.core.models import AuditAction
from orbit.core.redaction import unmask
from pipelines.models import Pipeline
from runs import planner, signals
from runs.models import Run, RunStatus, Step
from runs.store import store
from runs.store.records import NewRun

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
    rerun_of: Run | None = None,
    run_after: datetime | None = None,
    actor: Actor | None = None,
) -> Run:
    """Queue a run: validated, its steps laid out, committed, and announced to workers.

    With an `idempotency_key`, a repeated call returns the run the first one created;
    with `run_after`, no worker claims it before that moment.
    """
    row = pipeline if isinstance(pipeline, Pipeline) else get_pipeline(pipeline)
    if not row.enabled:  # every entry point: the API, the CLI, the dashboard, code
        raise PipelineDisabled(f"Pipeline {row.name!r} is disabled; enable it to run it")
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
    run = Run(
        id=uuid7(),
        pipeline=row,
        metadata=metadata,
        priority=priority,
        queue=queue,
        idempotency_key=idempotency_key,
        scheduled_for=scheduled_for,
        rerun_of=rerun_of,
    )
    changes: dict[str, Any] = {"pipeline": row.name, "priority": priority, "queue": queue}
    if scheduled_for is not None:
        changes["scheduled_for"] = scheduled_for.isoformat()
    action = AuditAction.RUN_CREATED
    if rerun_of is not None:  # its creation is the rerun's event: which run, what changed
        action = AuditAction.RUN_RERUN
        changes["rerun_of"] = str(rerun_of.id)
        changes["metadata"] = {"changed_keys": changed_keys(rerun_of.metadata, metadata)}
    if run_after is not None:
        changes["run_after"] = run_after.isoformat()
    steps = definition.step_names
    first = planner.plan(steps, {})
    run.current_step = first.name if isinstance(first, planner.NextStep) else ""
    [inserted] = store().insert_runs(
        [
            NewRun(
                id=run.id,
                pipeline_id=row.pk,
                steps=steps,
                current_step=run.current_step,
                metadata=metadata,
                priority=priority,
                queue=queue,
                idempotency_key=idempotency_key,
                scheduled_for=scheduled_for,
                rerun_of=rerun_of.id if rerun_of is not None else None,
                audit=event_values(action, run, actor=actor, changes=changes, label=run_label(run)),
                run_after=run_after,
            )
        ]
    )
    if not inserted.created:
        if idempotency_key is None:  # a schedule slot another process fired first
            raise IntegrityError(f"Pipeline {row.name!r} already has a run for {scheduled_for}")
        return Run.objects.select_related("pipeline").get(id=inserted.id)
    assert inserted.created_at is not None and inserted.available_at is not None
    run.created_at, run.available_at = inserted.created_at, inserted.available_at
    run._state.adding = False
    run._state.db = connection.alias
    if logger.isEnabledFor(logging.DEBUG):  # the enqueue hot path: one line per run is
        logger.debug(  # the outcome's, at INFO (runs/execution.py)
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


def run_rerun(
    run_id: uuid.UUID | str,
    *,
    metadata: dict[str, Any] | None = None,
    actor: Actor | None = None,
) -> Run:
    """Queue a new run of a run's pipeline: with its metadata, or with `metadata` (the
    edited input; masked secrets sent back keep the original's values). Unlike a retry,
    every step runs again. The two are linked both ways (`rerun_of`, `reruns`); the new
    run's creation is audited as a rerun, naming the original and the keys edited."""
    original = get_run(run_id)
    given = original.metadata if metadata is None else unmask(metadata, original.metadata)
    return run_create(
        original.pipeline,
        metadata=given,
        priority=original.priority,
        queue=original.queue,
        rerun_of=original,
        actor=actor,
    )


def run_retry(run_id: uuid.UUID | str, *, actor: Actor | None = None) -> Run:
    """Queue a failed or cancelled run again at its first unfinished step.

    Succeeded steps keep their results; unfinished ones get a fresh retry budget; the
    history of earlier attempts is kept.
    """
    run = get_run(run_id)
    code = run.pipeline.code
    with transaction.atomic():
        statuses = dict(Step.objects.filter(run=run).values_list("name", "status"))
        resume_at = planner.plan(code.step_names, statuses) if code is not None else None
        before = store().retry(
            run.id,
            current_step=resume_at.name if isinstance(resume_at, planner.NextStep) else "",
        )
        if before is None:
            run.refresh_from_db()
            raise InvalidTransition(
                f"Run {run.id} is {run.status}; only failed or cancelled runs can be retried"
            )
        record(
            AuditAction.RUN_RETRIED,
            run,
            actor=actor,
            changes={"status": [before, RunStatus.PENDING.value]},
            label=run_label(run),
        )
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
        before = store().cancel(run.id, reason=reason)
        if before is not None:
            record(
                AuditAction.RUN_CANCELLED,
                run,
                actor=actor,
                changes={"status": [before, RunStatus.CANCELLED.value]},
                label=run_label(run),
            )
            if before == RunStatus.RUNNING:
                store().announce_cancel(run.id)
            signals.send([signals.cancelled_event(run.id, reason=reason, previous_status=before)])
    if before is None:
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
