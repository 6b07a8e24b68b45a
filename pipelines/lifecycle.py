"""Changes to pipeline rows that the API, admin and dashboard make the same way.

Rows are operators' handles on code definitions: a row may be created for any definition
that exists in code, renamed, rescheduled, enabled or disabled, and deleted only while no
run refers to it (disable it instead, so no history is lost). Each function takes the
`actor` it acts for (orbit.core.audit) and records it in the same transaction.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from orbit.core.audit import Actor, diff, record
from orbit.core.exceptions import DefinitionError, OrbitError
from orbit.core.limits import validate_metadata
from orbit.core.models import AuditAction
from orbit.core.text import UNSTORABLE, storable
from pipelines.definition import NAME_RULE, is_valid_name, registry
from pipelines.limits import check_max_concurrency
from pipelines.models import Pipeline, ScheduleSource
from pipelines.schedules import validate_schedule
from pipelines.sources import MAX_CONCURRENCY, SCHEDULE

logger = logging.getLogger(__name__)

#: The fields `pipeline_update` may change; the definition is fixed once runs exist.
CHANGEABLE = (
    "name",
    "description",
    "schedule",
    "schedule_source",
    "default_metadata",
    "enabled",
    "max_concurrency",
    "max_concurrency_source",
)


class PipelineConflict(OrbitError):
    """The change conflicts with another pipeline or with the pipeline's runs."""


def pipeline_create(
    *,
    name: str,
    definition: str,
    description: str | None = None,
    schedule: str = "",
    default_metadata: dict[str, Any] | None = None,
    enabled: bool = True,
    actor: Actor | None = None,
) -> Pipeline:
    """A new row running the code definition `definition`; the schedule must parse."""
    _check_name(name)
    _check_description(description)
    code = registry.find(definition)
    if code is None:
        known = ", ".join(p.name for p in registry.all()) or "none"
        raise DefinitionError(
            f"No pipeline definition named {definition!r} in code. Known definitions: {known}",
            field="definition",
        )
    if schedule:
        _check_schedule(schedule)
    row = Pipeline(
        name=name,
        definition=definition,
        description=code.description if description is None else description,
        schedule=schedule,
        # An operator's own row: its schedule is what they gave, not the code's.
        schedule_source=ScheduleSource.OPERATOR,
        default_metadata=_check_metadata(default_metadata),
        enabled=enabled,
        # Limits follow the code until an operator changes max_concurrency on the row.
        max_concurrency=code.max_concurrency,
        rate_limit=code.rate_limit,
    )
    try:
        with transaction.atomic():
            row.save()
            record_saved(row, None, actor=actor)
    except IntegrityError:
        raise PipelineConflict(f"A pipeline named {name!r} already exists", field="name") from None
    logger.info(
        "Pipeline %s created",
        name,
        extra={"event": "pipeline_created", "pipeline": name, "definition": definition},
    )
    return row


def pipeline_update(pipeline: Pipeline, *, actor: Actor | None = None, **changes: Any) -> Pipeline:
    """Change the given fields of a row (see CHANGEABLE); unknown fields are refused."""
    unknown = sorted(set(changes) - set(CHANGEABLE))
    if unknown:
        raise OrbitError(
            f"{', '.join(unknown)} cannot be changed; changeable: {', '.join(CHANGEABLE)}",
            field=unknown[0],
        )
    if "name" in changes:
        _check_name(changes["name"])
    if "description" in changes:
        _check_description(changes["description"])
    if changes.get("schedule"):
        _check_schedule(changes["schedule"])
    if "default_metadata" in changes:
        changes["default_metadata"] = _check_metadata(changes["default_metadata"])
    if changes.get("schedule") is None and "schedule" in changes:
        changes["schedule"] = ""
    changes = schedule_rule(pipeline, changes)
    changes = limit_rule(pipeline, changes)
    if changes.get("description") is None and "description" in changes:
        changes["description"] = ""
    if not changes:
        return pipeline
    before = snapshot(pipeline)
    for name, value in changes.items():
        setattr(pipeline, name, value)
    try:
        with transaction.atomic():
            pipeline.save(update_fields=[*changes, "updated_at"])
            record_saved(pipeline, before, actor=actor)
    except IntegrityError:
        pipeline.refresh_from_db()
        raise PipelineConflict(
            f"A pipeline named {changes.get('name')!r} already exists", field="name"
        ) from None
    logger.info(
        "Pipeline %s changed: %s",
        pipeline.name,
        ", ".join(sorted(changes)),
        extra={"event": "pipeline_changed", "pipeline": pipeline.name, "fields": sorted(changes)},
    )
    return pipeline


def schedule_rule(pipeline: Pipeline, changes: dict[str, Any]) -> dict[str, Any]:
    """Code wins until an operator changes the schedule (pipelines/sources.py): the
    changes, with the schedule and its source made consistent."""
    return SCHEDULE.rule(pipeline, changes)


def limit_rule(pipeline: Pipeline, changes: dict[str, Any]) -> dict[str, Any]:
    """max_concurrency as schedules go (pipelines/sources.py), checked; an unchanged value
    is dropped from the changes."""
    changes = dict(changes)
    if "max_concurrency" in changes:
        changes["max_concurrency"] = check_max_concurrency(changes["max_concurrency"])
    changes = MAX_CONCURRENCY.rule(pipeline, changes)
    if changes.get("max_concurrency", ...) == pipeline.max_concurrency:
        del changes["max_concurrency"]
    return changes


def pipeline_set_enabled(pipeline: Pipeline, enabled: bool, *, actor: Actor | None = None) -> bool:
    """Enable or disable a row; False when it already was. Enabling resumes its schedule
    from the next slot: the slots missed while disabled are not caught up."""
    if pipeline.enabled == enabled:
        return False
    before = snapshot(pipeline)
    with transaction.atomic():
        pipeline.set_enabled(enabled)
        record_saved(pipeline, before, actor=actor)
    return True


def pipeline_delete(pipeline: Pipeline, *, actor: Actor | None = None) -> None:
    """Delete a row that has no runs; one with runs is refused (disable it instead)."""
    runs = pipeline.runs.count()
    try:
        if runs:
            raise ProtectedError("has runs", set())
        with transaction.atomic():
            record_deleted(pipeline, actor=actor)
            # A run created meanwhile still protects it: Django looks for runs before it
            # deletes (PROTECT), and on PostgreSQL the database refuses after, once a
            # batch that held the row committed its runs (functions.sql
            # `create_refuse_orphans`).
            pipeline.delete()
    except (ProtectedError, IntegrityError):
        runs = runs or pipeline.runs.count()
        if not runs:  # an IntegrityError about something else
            raise
        raise PipelineConflict(
            f"Pipeline {pipeline.name!r} has {runs} run{'s' if runs != 1 else ''}; "
            "disable it instead of deleting it, so its history is kept"
        ) from None
    logger.info(
        "Pipeline %s deleted",
        pipeline.name,
        extra={"event": "pipeline_deleted", "pipeline": pipeline.name},
    )


def snapshot(pipeline: Pipeline) -> dict[str, Any]:
    """The fields operators change, as the audit trail compares them."""
    return {
        "name": pipeline.name,
        "definition": pipeline.definition,
        "description": pipeline.description,
        "schedule": pipeline.schedule,
        "schedule_source": pipeline.schedule_source,
        "default_metadata": pipeline.default_metadata,
        "enabled": pipeline.enabled,
        "max_concurrency": pipeline.max_concurrency,
        "max_concurrency_source": pipeline.max_concurrency_source,
        "rate_limit": pipeline.rate_limit,
    }


def record_saved(
    pipeline: Pipeline, before: dict[str, Any] | None, *, actor: Actor | None = None
) -> None:
    """Audit a saved row: created (before is None), enabled, disabled, or changed.

    Call it in the save's transaction; the admin, whose forms save rows themselves, does too.
    """
    after = snapshot(pipeline)
    if before is None:
        record(AuditAction.PIPELINE_CREATED, pipeline, actor=actor, changes=diff({}, after))
        return
    changes = diff(before, after)
    if not changes:
        return
    action = AuditAction.PIPELINE_CHANGED
    if set(changes) == {"enabled"}:
        action = AuditAction.PIPELINE_ENABLED if pipeline.enabled else AuditAction.PIPELINE_DISABLED
    record(action, pipeline, actor=actor, changes=changes)


def record_deleted(pipeline: Pipeline, *, actor: Actor | None = None) -> None:
    """Audit a row about to be deleted, in the deletion's transaction."""
    record(
        AuditAction.PIPELINE_DELETED,
        pipeline,
        actor=actor,
        changes={"name": [pipeline.name, None], "definition": [pipeline.definition, None]},
    )


def _check_name(name: Any) -> None:
    if not is_valid_name(name):
        raise DefinitionError(NAME_RULE.format(name=name), field="name")


def _check_description(description: Any) -> None:
    if isinstance(description, str) and not storable(description):
        raise OrbitError(
            f"The description {UNSTORABLE}",
            field="description",
        )


def _check_schedule(schedule: str) -> None:
    try:
        validate_schedule(schedule)
    except OrbitError as exc:
        exc.context.setdefault("field", "schedule")
        raise


def _check_metadata(metadata: Any) -> dict[str, Any]:
    try:
        return validate_metadata(metadata)
    except OrbitError as exc:
        exc.context.setdefault("field", "default_metadata")
        raise
