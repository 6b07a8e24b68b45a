"""Changes to runs that the admin, dashboard, API, CLI and schedules all make the same way.

Each takes the `actor` it acts for (orbit.audit) and records it in the same transaction.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db import IntegrityError, transaction

from orbit.core.audit import Actor, record
from orbit.core.exceptions import (
    InvalidTransition,
    RunNotFound,
)
from orbit.core.models import AuditAction
from orbit.core.redaction import unmask
from runs import planner, signals
from runs.enqueueing import run_create, run_label
from runs.models import Run, RunStatus, Step
from runs.store import store

logger = logging.getLogger(__name__)


def get_run(run_id: uuid.UUID | str) -> Run:
    try:
        return Run.objects.select_related("pipeline").get(id=run_id)
    except (Run.DoesNotExist, ValueError, TypeError):
        raise RunNotFound(f"No run with id {run_id}") from None
    except Exception as exc:  # a malformed UUID raises ValidationError on some backends
        if type(exc).__name__ == "ValidationError":
            raise RunNotFound(f"No run with id {run_id}") from None
        raise


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
    try:
        return _retry(run, actor)
    except IntegrityError:  # Run.unique_key: another pending or running run holds it
        raise InvalidTransition(
            f"Run {run.id} cannot be retried: another pending or running run of "
            f"{run.pipeline.name} holds its unique key {run.unique_key!r}"
        ) from None


def _retry(run: Run, actor: Actor | None) -> Run:
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
