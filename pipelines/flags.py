"""An operator's flag on a pipeline row (paused, archived): set and cleared once, audited.

A flag is a timestamp column `<name>_at` (set while the flag is) with `<name>_by`, who set
it, and maybe a few notes kept with it (a pause's reason). Setting a flag that is set, or
clearing one that is not, changes nothing and records nothing: the first setting (its
time, author and notes) stands, and the caller is told (`False`). Each change is audited
in its own transaction for the actor given, and logged with a stable event name.

Both changes are conditional on the row as stored, not on the instance in hand: two
operators pausing at once make one pause, and a stale instance cannot clear what another
process set since. The instance is refreshed afterwards, so it shows what is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models.functions import Now

from orbit.core.audit import Actor, current_actor, record
from orbit.core.models import AuditAction
from pipelines.models import Pipeline


@dataclass(frozen=True, kw_only=True)
class Flag:
    """One flag: its columns, its audit actions and how the trail and the logs name it."""

    name: str  # "paused": the columns `paused_at`, `paused_by`; the audit key; the log verb
    undone: str  # "resumed": the log verb of clearing it
    set_action: AuditAction
    clear_action: AuditAction
    #: Where its changes are logged: the logger of the module that owns the flag.
    logger: logging.Logger
    #: Columns kept with the flag and emptied with it, each with its key in the audit trail.
    notes: Mapping[str, str] = field(default_factory=dict)
    #: Whether a change moves the row's `updated_at` (an archive does; a pause does not).
    touches: bool = False

    @property
    def at(self) -> str:
        return f"{self.name}_at"

    @property
    def by(self) -> str:
        return f"{self.name}_by"

    @property
    def columns(self) -> list[str]:
        """The columns a change writes, as the instance is refreshed from them."""
        return [self.at, self.by, *self.notes, *(["updated_at"] if self.touches else [])]

    def _touched(self) -> dict[str, Any]:
        return {"updated_at": Now()} if self.touches else {}


def flag_set(
    pipeline: Pipeline,
    flag: Flag,
    *,
    actor: Actor | None = None,
    notes: Mapping[str, str] | None = None,
    context: Mapping[str, Any] | None = None,
) -> bool:
    """Set `flag` on the row with its `notes` (column: value); False when it already was.

    `context` adds keys to the audit event's changes (what the row ran, say)."""
    actor = actor or current_actor()
    notes = dict(notes or {})
    with transaction.atomic():
        changed = Pipeline.objects.filter(id=pipeline.id, **{f"{flag.at}__isnull": True}).update(
            **{flag.at: Now(), flag.by: actor.name[:150]}, **notes, **flag._touched()
        )
        if changed:
            record(
                flag.set_action,
                pipeline,
                actor=actor,
                changes={
                    flag.name: [False, True],
                    **{key: notes[column] for column, key in flag.notes.items()},
                    **(context or {}),
                },
            )
    pipeline.refresh_from_db(fields=flag.columns)
    if changed:
        _log(flag.logger, pipeline, flag.name, actor)
    return bool(changed)


def flag_clear(
    pipeline: Pipeline,
    flag: Flag,
    *,
    actor: Actor | None = None,
    then: Callable[[], None] | None = None,
) -> bool:
    """Clear `flag` and its notes; False when it was not set.

    The audit event keeps who had set it and the notes; `then` runs in the same
    transaction when the flag was cleared (to announce it at commit, say)."""
    actor = actor or current_actor()
    with transaction.atomic():
        before = (
            Pipeline.objects.select_for_update()
            .filter(id=pipeline.id, **{f"{flag.at}__isnull": False})
            .values(flag.by, *flag.notes)
            .first()
        )
        if before is not None:
            Pipeline.objects.filter(id=pipeline.id).update(
                **{flag.at: None, flag.by: ""},
                **dict.fromkeys(flag.notes, ""),
                **flag._touched(),
            )
            record(
                flag.clear_action,
                pipeline,
                actor=actor,
                changes={
                    flag.name: [True, False],
                    flag.by: before[flag.by],
                    **{key: before[column] for column, key in flag.notes.items()},
                },
            )
            if then is not None:
                then()
    pipeline.refresh_from_db(fields=flag.columns)
    if before is not None:
        _log(flag.logger, pipeline, flag.undone, actor)
    return before is not None


def _log(logger: logging.Logger, pipeline: Pipeline, verb: str, actor: Actor) -> None:
    logger.info(
        "Pipeline %s %s by %s",
        pipeline.name,
        verb,
        actor.name,
        extra={"event": f"pipeline_{verb}", "pipeline": pipeline.name},
    )
