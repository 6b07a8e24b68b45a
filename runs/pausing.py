"""Pausing and resuming a queue or a pipeline: hold its queued runs without refusing new ones.

While a queue or a pipeline is paused, no claim takes its pending runs (the claim
statements test the pause in the same statement, so a pause committed before a claim
starts holds against that claim); new runs are accepted and wait with them; running runs
finish normally. Resuming makes them claimable at once and announces it (NOTIFY, or a
datagram on SQLite) so idle workers claim them without waiting for their poll.

This differs from disabling a pipeline, which also holds its queued runs but refuses new
ones and stops its schedule: a pause is for "hold everything for now", not "this must
not run". A paused pipeline's schedule still creates its runs, which wait.

Pausing what is already paused changes nothing and records nothing: the first pause (its
time, author and reason) stands, and the caller is told (`False`). Resuming what is not
paused is the same. Each change is audited in its own transaction for the actor given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Q

from orbit.core.audit import Actor, current_actor, record
from orbit.core.clock import db_now
from orbit.core.exceptions import OrbitError
from orbit.core.models import AuditAction
from orbit.core.text import UNSTORABLE, storable
from pipelines.flags import Flag, flag_clear, flag_set
from pipelines.models import Pipeline
from runs.enqueueing import validate_queue
from runs.models import ACTIVE_STATUSES, QueuePause, Run, RunStatus
from runs.store import store

logger = logging.getLogger(__name__)

#: The longest reason a pause keeps (the column's length).
MAX_REASON = 500

#: A pipeline's pause: `paused_at`, `paused_by` and `pause_reason` (the trail's "reason").
PAUSED = Flag(
    name="paused",
    undone="resumed",
    set_action=AuditAction.PIPELINE_PAUSED,
    clear_action=AuditAction.PIPELINE_RESUMED,
    notes={"pause_reason": "reason"},
    logger=logger,
)


class InvalidReason(OrbitError):
    """The pause's reason is not text a database can keep."""


@dataclass(frozen=True)
class Pause:
    """Who paused a queue or a pipeline, when, and why."""

    paused_at: datetime
    paused_by: str
    reason: str

    def describe(self, now: datetime) -> str:
        """`paused by alice 3 min ago`: how every entry point shows a pause."""
        return f"paused by {self.paused_by} {ago((now - self.paused_at).total_seconds())}"


@dataclass(frozen=True)
class QueueState:
    """One queue as operators see it: its active runs and whether it is paused."""

    queue: str
    pending: int
    due: int  # pending and due now (paused or not)
    running: int
    pause: Pause | None


@dataclass(frozen=True)
class Held:
    """A paused queue or pipeline and how many pending runs it holds."""

    kind: str  # "queue" or "pipeline"
    name: str
    pause: Pause
    pending: int

    @property
    def reason(self) -> str:
        """One line for health reports: `queue 'mail' paused by alice: 2 pending runs wait`."""
        runs = "1 pending run waits" if self.pending == 1 else f"{self.pending} pending runs wait"
        return f"{self.kind} {self.name!r} paused by {self.pause.paused_by}: {runs}"


def ago(seconds: float) -> str:
    """`just now`, `12 s ago`, `3 min ago`, `2 h ago`, `4 d ago`: whole units, rounded down."""
    if seconds < 1:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def validate_reason(reason: Any) -> str:
    """The reason, stripped: text, at most MAX_REASON characters, no NUL."""
    if reason is None:
        return ""
    if not isinstance(reason, str):
        raise InvalidReason(f"reason must be text, not {type(reason).__name__}", field="reason")
    text: str = reason.strip()
    if len(text) > MAX_REASON:
        raise InvalidReason(f"reason is longer than {MAX_REASON} characters", field="reason")
    if not storable(text):
        raise InvalidReason(f"reason {UNSTORABLE}", field="reason")
    return text


def pipeline_pause(pipeline: Pipeline, *, reason: Any = "", actor: Actor | None = None) -> bool:
    """Pause a pipeline; False (and nothing changed) when it already was paused."""
    reason = validate_reason(reason)
    return flag_set(pipeline, PAUSED, actor=actor, notes={"pause_reason": reason})


def pipeline_resume(pipeline: Pipeline, *, actor: Actor | None = None) -> bool:
    """Resume a paused pipeline and wake idle workers; False when it was not paused."""
    # Announced at commit: idle workers claim its runs now.
    return flag_clear(pipeline, PAUSED, actor=actor, then=lambda: store().announce())


def queue_pause(queue: Any, *, reason: Any = "", actor: Actor | None = None) -> bool:
    """Pause a queue (it need not hold runs yet); False when it already was paused."""
    queue = validate_queue(queue)
    reason = validate_reason(reason)
    actor = actor or current_actor()
    try:
        with transaction.atomic():
            row = QueuePause.objects.create(queue=queue, paused_by=actor.name[:150], reason=reason)
            record(
                AuditAction.QUEUE_PAUSED,
                row,
                actor=actor,
                changes={"paused": [False, True], "reason": reason},
            )
    except IntegrityError:  # its row exists: paused already (or by a concurrent call)
        return False
    logger.info(
        "Queue %s paused by %s",
        queue,
        actor.name,
        extra={"event": "queue_paused", "queue": queue},
    )
    return True


def queue_resume(queue: Any, *, actor: Actor | None = None) -> bool:
    """Resume a paused queue and wake idle workers; False when it was not paused."""
    queue = validate_queue(queue)
    actor = actor or current_actor()
    with transaction.atomic():
        row = QueuePause.objects.select_for_update().filter(queue=queue).first()
        if row is None:
            return False
        record(
            AuditAction.QUEUE_RESUMED,
            row,
            actor=actor,
            changes={"paused": [True, False], "paused_by": row.paused_by, "reason": row.reason},
        )
        row.delete()
        store().announce()  # sent at commit: idle workers claim its runs now
    logger.info(
        "Queue %s resumed by %s",
        queue,
        actor.name,
        extra={"event": "queue_resumed", "queue": queue},
    )
    return True


def queue_pause_reason(queue: Any, reason: Any, *, actor: Actor | None = None) -> bool:
    """Change a paused queue's reason (its author and time stay); False when not paused."""
    queue = validate_queue(queue)
    reason = validate_reason(reason)
    with transaction.atomic():
        row = QueuePause.objects.select_for_update().filter(queue=queue).first()
        if row is None:
            return False
        if row.reason != reason:
            record(
                AuditAction.QUEUE_PAUSE_CHANGED,
                row,
                actor=actor,
                changes={"reason": [row.reason, reason]},
            )
            QueuePause.objects.filter(queue=queue).update(reason=reason)
    return True


def queue_pause_of(queue: str) -> Pause | None:
    """The queue's pause, if it is paused."""
    row = QueuePause.objects.filter(queue=queue).first()
    return None if row is None else Pause(row.paused_at, row.paused_by, row.reason)


def pipeline_pause_of(pipeline: Pipeline) -> Pause | None:
    """The pipeline's pause, if it is paused."""
    if pipeline.paused_at is None:
        return None
    return Pause(pipeline.paused_at, pipeline.paused_by, pipeline.pause_reason)


def queue_states() -> list[QueueState]:
    """Every queue that has active runs or is paused, by name: read through the pending and
    running rows only (the status index), so finished history costs nothing."""
    now = db_now()
    counts = {
        queue: (pending, due, running)
        for queue, pending, due, running in Run.objects.filter(status__in=ACTIVE_STATUSES)
        .values_list("queue")
        .annotate(
            pending=Count("id", filter=Q(status=RunStatus.PENDING)),
            due=Count("id", filter=Q(status=RunStatus.PENDING, available_at__lte=now)),
            running=Count("id", filter=Q(status=RunStatus.RUNNING)),
        )
        .order_by()
    }
    pauses = {
        row.queue: Pause(row.paused_at, row.paused_by, row.reason)
        for row in QueuePause.objects.all()
    }
    return [
        QueueState(name, *counts.get(name, (0, 0, 0)), pause=pauses.get(name))
        for name in sorted(counts.keys() | pauses.keys())
    ]


def held() -> list[Held]:
    """Paused queues and pipelines with the pending runs each holds, most first: what an
    operator looking at a stuck queue needs to see."""
    found = []
    pending = Run.objects.pending()
    queue_counts = dict(
        pending.filter(queue__in=QueuePause.objects.values("queue"))
        .values_list("queue")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in QueuePause.objects.all():
        held_by = Pause(row.paused_at, row.paused_by, row.reason)
        found.append(Held("queue", row.queue, held_by, queue_counts.get(row.queue, 0)))
    pipeline_counts = dict(
        pending.filter(pipeline__paused_at__isnull=False)
        .values_list("pipeline_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    for pipeline in Pipeline.objects.unarchived().filter(paused_at__isnull=False):
        pause = pipeline_pause_of(pipeline)
        if pause is not None:
            found.append(
                Held("pipeline", pipeline.name, pause, pipeline_counts.get(pipeline.id, 0))
            )
    return sorted(found, key=lambda h: (-h.pending, h.kind, h.name))
