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

from orbit.core.audit import Actor
from orbit.core.models import AuditAction
from pipelines import lookup
from pipelines.flags import Flag, flag_clear, flag_set
from pipelines.lifecycle import PipelineConflict
from pipelines.models import Pipeline

logger = logging.getLogger(__name__)

#: `archived_at`, `archived_by`; an archive moves the row's `updated_at`.
ARCHIVED = Flag(
    name="archived",
    undone="unarchived",
    set_action=AuditAction.PIPELINE_ARCHIVED,
    clear_action=AuditAction.PIPELINE_UNARCHIVED,
    touches=True,
    logger=logger,
)


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
    try:
        return flag_set(
            pipeline, ARCHIVED, actor=actor, context={"definition": pipeline.definition}
        )
    finally:  # this process's cached row is stale either way; forgetting it is always safe
        lookup.forget(pipeline.name)


def pipeline_unarchive(pipeline: Pipeline, *, actor: Actor | None = None) -> bool:
    """Bring an archived row back; False when it was not archived."""
    return flag_clear(pipeline, ARCHIVED, actor=actor)
