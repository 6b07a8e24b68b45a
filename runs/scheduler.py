"""Fire cron schedules: one run per due slot, exactly once however many workers tick.

Every worker calls `fire_due_schedules()` every ORBIT_SCHEDULE_INTERVAL seconds. The
guarantee is the database's: `run_unique_schedule_slot` allows one run per pipeline and
slot, so a worker that loses a race gets an IntegrityError and moves on. On PostgreSQL an
advisory lock also lets one worker at a time do the work, so the others do not queue on
that unique index.

Where a pipeline's slots fall is cron arithmetic (pipelines/schedules.py); which slot
fired last is a question about runs, so it is answered here (`with_last_slot`,
`last_scheduled_run`, `next_fire_time`) for the worker and for listings alike.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from django.db import IntegrityError
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from orbit.core.audit import Actor
from orbit.core.clock import db_now
from orbit.core.conf import orbit_settings
from orbit.core.exceptions import InvalidSchedule, OrbitError
from orbit.core.models import AuditSource
from pipelines.models import Pipeline
from pipelines.schedules import next_slot, slots_between
from runs.enqueueing import run_create
from runs.models import Run
from runs.store import store

logger = logging.getLogger(__name__)

#: pg_try_advisory_xact_lock key held while one worker fires schedules ("orbitsch").
ADVISORY_LOCK_ID = 0x6F72626974736368
#: Who fired a slot, for the audit trail: the schedule itself, whichever process ran it.
SCHEDULE_ACTOR = Actor.system(AuditSource.SCHEDULE, "schedule")

# Invalid schedules already reported by this process, so a bad row is logged once.
_reported: set[tuple[int, str]] = set()


def fire_due_schedules(now: datetime | None = None, *, exclusive: bool = True) -> list[Run]:
    """Create the runs of every enabled pipeline's due schedule slots; returns those created.

    `now` defaults to the database clock. `exclusive=False` skips the PostgreSQL advisory
    lock (the unique slot constraint still holds); the tests use it to race workers.
    """
    if now is not None and (now.tzinfo is None or now.utcoffset() is None):
        raise ValueError(f"now must be a timezone-aware datetime, not {now!r}")
    with store().exclusive(ADVISORY_LOCK_ID) if exclusive else nullcontext(True) as acquired:
        if not acquired:
            return []
        now = now or db_now()  # workers on several hosts agree on it, not on their own
        created: list[Run] = []
        for row in _scheduled_pipelines():
            created.extend(_fire_pipeline(row, now))
        return created


def due_slots(row: Pipeline, now: datetime, last_slot: datetime | None) -> list[datetime]:
    """The slots of `row` to fire at `now` under ORBIT_SCHEDULE_CATCHUP, oldest first."""
    start = schedule_start(row, last_slot)
    first = _first_slot_after(row.schedule, start, orbit_settings.schedule_timezone)
    if first is None or first > now:
        return []  # the usual tick: nothing due yet, known without walking the calendar
    policy = orbit_settings.schedule_catchup
    if policy == "all":
        limit = orbit_settings.schedule_catchup_max
        slots = slots_between(row.schedule, start, now, limit=limit)
        if len(slots) == limit:
            dropped = slots_between(
                row.schedule, start, slots[0] - timedelta(microseconds=1), limit=1
            )
            if dropped:
                logger.warning(
                    "Pipeline %s missed more than %s schedule slots; firing the latest %s "
                    "(ORBIT_SCHEDULE_CATCHUP_MAX)",
                    row.name,
                    limit,
                    limit,
                    extra={"event": "schedule_catchup_truncated", "pipeline": row.name},
                )
        return slots
    slots = slots_between(row.schedule, start, now, limit=1)
    if policy == "skip":
        grace = timedelta(seconds=orbit_settings.schedule_grace)
        return [slot for slot in slots if now - slot <= grace]
    return slots


def schedule_start(pipeline_row: Pipeline, last_slot: datetime | None) -> datetime:
    """Slots at or before this time never fire: the anchor, or the last slot fired."""
    anchor = pipeline_row.schedule_anchor
    if not isinstance(anchor, datetime):  # not read back from the database yet
        pipeline_row.refresh_from_db(fields=["schedule_anchor"])
        anchor = pipeline_row.schedule_anchor
    return max(anchor, last_slot) if last_slot is not None else anchor


def next_fire_time(pipeline_row: Pipeline, after: datetime | None = None) -> datetime | None:
    """When the pipeline's schedule next fires; None when it is disabled, archived, or has
    no schedule.

    `after` defaults to now. The time is in ORBIT_SCHEDULE_TIMEZONE.
    """
    if not pipeline_row.enabled or pipeline_row.is_archived or not pipeline_row.schedule:
        return None
    if after is None:
        after = timezone.now()
    last_slot: datetime | None
    if hasattr(pipeline_row, "last_slot"):  # annotated by with_last_slot()
        last_slot = pipeline_row.last_slot
    else:
        last = last_scheduled_run(pipeline_row)
        last_slot = last.scheduled_for if last else None
    start = max(after, schedule_start(pipeline_row, last_slot))
    try:
        return next_slot(pipeline_row.schedule, start)
    except InvalidSchedule:
        return None  # only rows written around Pipeline.save() can hold one


def with_last_slot(pipelines: QuerySet[Pipeline]) -> QuerySet[Pipeline]:
    """Annotate each row with `last_slot`, its latest fired slot, in the same query.

    `next_fire_time` uses the annotation when present, so a page listing many pipelines
    does not query once per row.
    """
    latest = (
        Run.objects.filter(pipeline=OuterRef("pk"), scheduled_for__isnull=False)
        .order_by("-scheduled_for")
        .values("scheduled_for")[:1]
    )
    return pipelines.annotate(last_slot=Subquery(latest))


def last_scheduled_run(pipeline_row: Pipeline) -> Run | None:
    """The run created for the pipeline's latest schedule slot, if any."""
    return (
        Run.objects.filter(pipeline=pipeline_row, scheduled_for__isnull=False)
        .order_by("-scheduled_for")
        .first()
    )


@lru_cache(maxsize=4096)
def _first_slot_after(expression: str, start: datetime, zone: ZoneInfo) -> datetime | None:
    """Cached: between two slots, every tick asks the same question about each pipeline."""
    return next_slot(expression, start, zone)


def _fire_pipeline(row: Pipeline, now: datetime) -> list[Run]:
    try:
        slots = due_slots(row, now, row.last_slot)  # type: ignore[attr-defined]
    except InvalidSchedule as exc:
        if (row.pk, row.schedule) not in _reported:
            _reported.add((row.pk, row.schedule))
            logger.error(
                "Pipeline %s has an invalid schedule and does not fire: %s",
                row.name,
                exc,
                extra={"event": "schedule_invalid", "pipeline": row.name},
            )
        return []
    created = []
    for slot in slots:
        run = fire_slot(row, slot)
        if run is not None:
            created.append(run)
    return created


def fire_slot(row: Pipeline, slot: datetime) -> Run | None:
    """Create the run for one slot; None when another worker already did."""
    try:
        run = run_create(
            row,
            metadata={"scheduled_for": slot.isoformat()},
            scheduled_for=slot,
            actor=SCHEDULE_ACTOR,
        )
    except IntegrityError:
        if Run.objects.filter(pipeline=row, scheduled_for=slot).exists():
            return None  # another worker fired this slot first: the constraint did its job
        raise
    except OrbitError as exc:  # e.g. default metadata that grew too large: log, keep going
        logger.error(
            "Pipeline %s could not fire its %s slot: %s",
            row.name,
            slot.isoformat(),
            exc,
            extra={"event": "schedule_failed", "pipeline": row.name},
        )
        return None
    logger.info(
        "Pipeline %s fired for its %s slot: run %s",
        row.name,
        slot.isoformat(),
        run.id,
        extra={
            "event": "schedule_fired",
            "pipeline": row.name,
            "run_id": str(run.id),
            "scheduled_for": slot.isoformat(),
        },
    )
    return run


def _scheduled_pipelines() -> list[Pipeline]:
    """Enabled pipelines with a schedule and code to run, each with its latest fired slot."""
    rows = with_last_slot(Pipeline.objects.scheduled())
    # A row whose definition left the code cannot start runs; the dashboard shows why.
    return [row for row in rows if row.code is not None]
