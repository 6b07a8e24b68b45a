"""Cron schedules: which expressions are valid, and when their slots fall.

Expressions are read by `cronsim` in ORBIT_SCHEDULE_TIMEZONE, which follows Debian cron
across daylight-saving changes: a fixed-time job whose time is skipped in spring runs
right after the jump, and one whose time repeats in autumn runs once; jobs with a
wildcard minute or hour run in real elapsed time. See docs/SCHEDULES.md.
"""

from __future__ import annotations

import logging
from collections import deque
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from orbit.core.conf import orbit_settings
from orbit.core.exceptions import InvalidSchedule

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
