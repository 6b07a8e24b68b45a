"""Keep a `Pipeline` row for every code definition (after migrate and at worker start),
and keep each row's settings following its code until an operator changes them.

The rule (pipelines/sources.py, "Code or operator"): a row's schedule and max_concurrency
follow the definition's while their source is "code", so a value changed in code takes
effect at the next sync (a deploy's first worker, or `migrate`); an operator's value is
left as it is. The rate limit always follows the code.

An archived row (pipelines/archiving.py) whose definition is back in code is un-archived
by the sync: the code coming back brings the pipeline back.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DEFAULT_DB_ALIAS, IntegrityError, transaction

from orbit.core.audit import Actor
from orbit.core.models import AuditSource
from pipelines import lookup
from pipelines.archiving import pipeline_unarchive
from pipelines.definition import registry
from pipelines.lifecycle import record_saved, snapshot
from pipelines.models import Pipeline, ScheduleSource
from pipelines.sources import MAX_CONCURRENCY, SCHEDULE

logger = logging.getLogger(__name__)

#: Who the audit trail says changed a schedule that followed its code.
CODE_SYNC = Actor.system(AuditSource.CODE, "pipeline sync")


def sync_pipelines(using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Create the missing rows, un-archive the rows whose definition is back, and bring
    code-sourced schedules up to date with the code; returns the names created.
    Operators' edits are kept. Forgets the rows this process
    cached for enqueueing (pipelines/lookup.py), so the next enqueue reads them again."""
    lookup.forget()
    rows = list(Pipeline.objects.using(using).all())
    existing = {row.definition for row in rows}
    created = []
    for definition in registry.all():
        if definition.name in existing:
            continue
        try:
            with transaction.atomic(using=using):
                Pipeline.objects.using(using).create(
                    name=definition.name,
                    definition=definition.name,
                    description=definition.description,
                    schedule=definition.schedule,
                    schedule_source=ScheduleSource.CODE,
                    max_concurrency=definition.max_concurrency,
                    rate_limit=definition.rate_limit,
                )
        except IntegrityError:
            continue  # another process created it, or a row already uses the name
        created.append(definition.name)
    for row in rows:
        code = registry.find(row.definition)
        if code is not None:
            _sync_limits(row, code, using)
        if code is not None and row.archived_at is not None:
            pipeline_unarchive(row, actor=CODE_SYNC)
        if code is None or not SCHEDULE.lags(row, code):
            continue
        before = snapshot(row)
        with transaction.atomic(using=using):
            row.schedule = code.schedule
            row.save(using=using, update_fields=["schedule", "updated_at"])
            record_saved(row, before, actor=CODE_SYNC)
        logger.info(
            "Pipeline %s follows its code's new schedule %r (was %r)",
            row.name,
            code.schedule,
            before["schedule"],
            extra={"event": "pipeline_schedule_synced", "pipeline": row.name},
        )
    return created


def _sync_limits(row: Pipeline, code: Any, using: str) -> None:
    """The row's rate limit follows its code always; its max_concurrency while its
    source is "code" (an operator's value is kept, as an operator's schedule is)."""
    changes: dict[str, Any] = {}
    if row.rate_limit != code.rate_limit:
        changes["rate_limit"] = code.rate_limit
    if MAX_CONCURRENCY.lags(row, code):
        changes["max_concurrency"] = code.max_concurrency
    if not changes:
        return
    before = snapshot(row)
    with transaction.atomic(using=using):
        for name, value in changes.items():
            setattr(row, name, value)
        row.save(using=using, update_fields=[*changes, "updated_at"])
        record_saved(row, before, actor=CODE_SYNC)
    logger.info(
        "Pipeline %s follows its code's limits: %s",
        row.name,
        ", ".join(f"{k}={v!r}" for k, v in sorted(changes.items())),
        extra={"event": "pipeline_limits_synced", "pipeline": row.name},
    )


def sync_after_migrate(using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    sync_pipelines(using)
