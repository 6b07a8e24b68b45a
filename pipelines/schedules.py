"""Cron schedules: which expressions are valid, and when a pipeline's slots fall.

Expressions are read by `cronsim` in ORBIT_SCHEDULE_TIMEZONE, which follows Debian cron
across daylight-saving changes: a fixed-time job whose time is skipped in spring runs
right after the jump, and one whose time repeats in autumn runs once; jobs with a
wildcard minute or hour run in real elapsed time. See docs/SCHEDULES.md.
"""

from __future__ import annotations

import logging
from collections import deque
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError
from django.db.models import OuterRef, Subquery

from orbit.conf import orbit_settings
from orbit.exceptions import InvalidSchedule

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from pipelines.models import Pipeline
    from runs.models import Run

logger = logging.getLogger(__name__)

MAX_LENGTH = 100
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31, L or LW"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT, 0 and 7 being Sunday; 5L and MON#2 forms"),
)
# Forward and backward cron iteration may disagree by up to one daylight-saving offset
# (at most two hours anywhere); looking back further than that keeps them in step.
DST_MARGIN = timedelta(hours=3)


def validate_schedule(expression: str) -> None:
    """Raise InvalidSchedule saying what is wrong unless `expression` is a usable cron schedule."""
    _cron_expression(expression)


def _cron_expression(expression: Any) -> str:
    """The five-field form of a valid expression (aliases expanded)."""
    if not isinstance(expression, str):
        raise InvalidSchedule(f"A schedule must be a string, not {type(expression).__name__}")
    text = expression.strip()
    if not text:
        raise InvalidSchedule("The schedule is empty: give a cron expression such as '0 3 * * *'")
    if len(expression) > MAX_LENGTH:
        raise InvalidSchedule(
            f"Schedule {_short(expression)} is {len(expression)} characters long; "
            f"the limit is {MAX_LENGTH}"
        )
    if text.startswith("@"):
        alias = text.lower()
        if alias not in ALIASES:
            raise InvalidSchedule(
                f"Schedule {text!r} is not a known alias; use one of: {', '.join(ALIASES)}"
            )
        return ALIASES[alias]
    parts = text.split()
    if len(parts) != len(FIELDS):
        raise InvalidSchedule(
            f"Schedule {text!r} has {len(parts)} field{'s' if len(parts) != 1 else ''}; "
            "a cron expression has five: minute hour day-of-month month day-of-week"
        )
    for index, (name, allowed) in enumerate(FIELDS):
        probe = ["*"] * len(FIELDS)
        probe[index] = parts[index]
        try:
            CronSim(" ".join(probe), _REFERENCE)
        except (CronSimError, ValueError, IndexError):
            raise InvalidSchedule(
                f"Schedule {text!r}: the {name} field {parts[index]!r} is invalid "
                f"(allowed: {allowed})"
            ) from None
    try:
        next(CronSim(text, _REFERENCE))
    except (CronSimError, StopIteration, ValueError, IndexError):
        raise InvalidSchedule(
            f"Schedule {text!r} never fires: no month in it has that day of the month"
        ) from None
    return text


_REFERENCE = datetime(2000, 1, 1)


def _short(text: str) -> str:
    return repr(text[:30] + "...") if len(text) > 30 else repr(text)


def slots_between(
    expression: str, after: datetime, until: datetime, *, limit: int
) -> list[datetime]:
    """The latest `limit` slots in (after, until], oldest first, in the schedule time zone."""
    cron = _cron_expression(expression)
    zone = orbit_settings.schedule_timezone
    if until <= after or limit < 1:
        return []
    # Walk back from `until` to find where the last `limit` slots start, so a schedule
    # that missed a month of minutes does not iterate through all of them...
    lower = after
    backwards = CronSim(
        cron, until.astimezone(zone).replace(microsecond=0) + timedelta(seconds=1), reverse=True
    )
    earliest: datetime | None = None
    try:
        for _ in range(limit):
            previous = next(backwards)
            if previous <= after:
                break
            earliest = previous
        else:
            if earliest is not None:
                lower = max(after, earliest - DST_MARGIN)
    except StopIteration:
        pass
    # ...then walk forward, which is the direction cron's daylight-saving rules are
    # defined in. Forward results can precede the start inside a repeated hour: skip them.
    found: deque[datetime] = deque(maxlen=limit)
    for slot in CronSim(cron, lower.astimezone(zone)):
        if slot > until:
            break
        if slot > after:
            found.append(slot)
    return list(found)


def next_slot(expression: str, after: datetime, zone: ZoneInfo | None = None) -> datetime | None:
    """The first slot strictly after `after`, in `zone` (default: the schedule time zone)."""
    cron = _cron_expression(expression)
    try:
        for slot in CronSim(cron, after.astimezone(zone or orbit_settings.schedule_timezone)):
            if slot > after:
                return slot
    except StopIteration:
        return None
    return None


def schedule_start(pipeline_row: Pipeline, last_slot: datetime | None) -> datetime:
    """Slots at or before this time never fire: the anchor, or the last slot fired."""
    anchor = pipeline_row.schedule_anchor
    if not isinstance(anchor, datetime):  # not read back from the database yet
        pipeline_row.refresh_from_db(fields=["schedule_anchor"])
        anchor = pipeline_row.schedule_anchor
    return max(anchor, last_slot) if last_slot is not None else anchor


def next_fire_time(pipeline_row: Pipeline, after: datetime | None = None) -> datetime | None:
    """When the pipeline's schedule next fires; None when it is disabled or has no schedule.

    `after` defaults to now. The time is in ORBIT_SCHEDULE_TIMEZONE.
    """
    if not pipeline_row.enabled or not pipeline_row.schedule:
        return None
    if after is None:
        from django.utils import timezone

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
    from runs.models import Run

    latest = (
        Run.objects.filter(pipeline=OuterRef("pk"), scheduled_for__isnull=False)
        .order_by("-scheduled_for")
        .values("scheduled_for")[:1]
    )
    return pipelines.annotate(last_slot=Subquery(latest))


def last_scheduled_run(pipeline_row: Pipeline) -> Run | None:
    """The run created for the pipeline's latest schedule slot, if any."""
    from runs.models import Run

    return (
        Run.objects.filter(pipeline=pipeline_row, scheduled_for__isnull=False)
        .order_by("-scheduled_for")
        .first()
    )


def describe_schedule(expression: str) -> str:
    """A human sentence for a valid expression ("At 03:00"), or "" when there is none."""
    if not expression:
        return ""
    try:
        cron = _cron_expression(expression)
        return str(CronSim(cron, _REFERENCE).explain())
    except (InvalidSchedule, CronSimError, ValueError, KeyError, IndexError):
        return ""


def schedule_validator(value: str) -> None:
    """The `Pipeline.schedule` field validator: forms show the same message as the API and code."""
    from django.core.exceptions import ValidationError

    try:
        validate_schedule(value)
    except InvalidSchedule as exc:
        raise ValidationError(str(exc), code="invalid_schedule") from None
