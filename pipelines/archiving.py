"""Archiving and un-archiving a pipeline row whose definition is gone from code.

A throwaway pipeline run once from the CLI leaves a row behind; once it has runs, the row
cannot be deleted (its runs keep their history), and its "definition missing" card would
stay on the dashboard for ever. Archiving sets it aside: its card leaves the pipelines
page (listed under "Show archived"), it cannot start runs (runs.enqueueing refuses it, and
the insert itself re-checks the stored row), and no claim takes its queued runs; its runs
stay visible everywhere runs are listed.

The rule: only a row whose definition is not in code (in the code of the process that
archives it) may be archived. A row still defined in code is refused with the reason:
the next sync would bring it back, so archiving it would not last; disable it instead.
A sync (pipelines/sync.py: `migrate`, a worker's start) un-archives a row whose
definition has come back into the code, so bringing the code back brings the pipeline
back. An operator may un-archive any archived row.

Archiving what is archived, or un-archiving what is not, changes nothing, records nothing
and returns False. Each change is audited in its own transaction for the actor given.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.functions import Now

from orbit.core.audit import Actor, current_actor, record
from orbit.core.models import AuditAction
from pipelines import lookup
from pipelines.lifecycle import PipelineConflict
from pipelines.models import Pipeline

logger = logging.getLogger(__name__)


def pipeline_archive(pipeline: Pipeline, *, actor: Actor | None = None) -> bool:
    """Archive a row whose definition is gone from code; False when it already was.

    Raises PipelineConflict for a row still defined in code (a sync would un-archive it).
    """
    if pipeline.code is not None:
        raise PipelineConflict(
            f"Pipeline {pipeline.name!r} runs definition {pipeline.definition!r}, which is "
            "still in code: only a pipeline whose definition is gone can be archived (the "
            "next sync would bring it back); disable it instead"
        )
    actor = actor or current_actor()
    with transaction.atomic():
        # Conditional on the row as stored: two operators archiving at once make one archive.
        archived = Pipeline.objects.filter(id=pipeline.id, archived_at__isnull=True).update(
            archived_at=Now(), archived_by=actor.name[:150], updated_at=Now()
        )
        if archived:
            record(
                AuditAction.PIPELINE_ARCHIVED,
                pipeline,
                actor=actor,
                changes={"archived": [False, True], "definition": pipeline.definition},
            )
    lookup.forget(pipeline.name)
    pipeline.refresh_from_db(fields=["archived_at", "archived_by", "updated_at"])
    if archived:
        logger.info(
            "Pipeline %s archived by %s",
            pipeline.name,
            actor.name,
            extra={"event": "pipeline_archived", "pipeline": pipeline.name},
        )
    return bool(archived)


def pipeline_unarchive(pipeline: Pipeline, *, actor: Actor | None = None) -> bool:
    """Bring an archived row back; False when it was not archived."""
    actor = actor or current_actor()
    with transaction.atomic():
        before = (
            Pipeline.objects.select_for_update()
            .filter(id=pipeline.id, archived_at__isnull=False)
            .values_list("archived_by", flat=True)
            .first()
        )
        if before is not None:
            Pipeline.objects.filter(id=pipeline.id).update(
                archived_at=None, archived_by="", updated_at=Now()
            )
            record(
                AuditAction.PIPELINE_UNARCHIVED,
                pipeline,
                actor=actor,
                changes={"archived": [True, False], "archived_by": before},
            )
    pipeline.refresh_from_db(fields=["archived_at", "archived_by", "updated_at"])
    if before is not None:
        logger.info(
            "Pipeline %s unarchived by %s",
            pipeline.name,
            actor.name,
            extra={"event": "pipeline_unarchived", "pipeline": pipeline.name},
        )
    return before is not None
