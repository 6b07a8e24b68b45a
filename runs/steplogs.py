"""Reading step logs (runs.StepLog) a page at a time, with a cursor a client polls with.

Records are written while a step runs (runs/supervision.py, runs/worker/loop.py), each
attempt's in sequence order and an attempt's only after the one before it ended, so the
(attempt, sequence) of the last record read is a cursor that never skips a record: ask
again with it and get only what was written since.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from orbit.core.exceptions import InvalidCursor
from runs.models import Step, StepLog

#: Records per page when the caller does not say.
PAGE = 500


@dataclass(frozen=True)
class LogPage:
    step: Step
    records: list[dict[str, Any]]
    #: Pass back as `after` for the records written since (None: there were none yet).
    next_cursor: str | None
    #: The page is full: more records are there already.
    more: bool


def cursor_of(attempt: int, sequence: int) -> str:
    return f"{attempt}.{sequence}"


def parse_cursor(cursor: str) -> tuple[int, int]:
    try:
        attempt, sequence = (int(part) for part in cursor.split("."))
    except ValueError:
        raise InvalidCursor(
            f"Cursor {cursor!r} is not one this API gave out (expected ATTEMPT.SEQUENCE)",
            field="after",
        ) from None
    return attempt, sequence


def step_logs(step: Step, *, after: str | None = None, limit: int = PAGE) -> LogPage:
    """The step's records after the cursor `after` (from the first without one), oldest first."""
    lines = StepLog.objects.filter(run_id=step.run_id, step_id=step.id)
    if after:
        attempt, sequence = parse_cursor(after)
        lines = lines.filter(Q(attempt__gt=attempt) | Q(attempt=attempt, sequence__gt=sequence))
    found = list(lines.order_by("attempt", "sequence")[: limit + 1])
    page = found[:limit]
    last = page[-1] if page else None
    return LogPage(
        step=step,
        records=[line.as_record() for line in page],
        next_cursor=cursor_of(last.attempt, last.sequence) if last else after,
        more=len(found) > limit,
    )


def run_logs(steps: list[Step], *, limit_per_step: int = PAGE) -> dict[int, list[dict[str, Any]]]:
    """Each step's latest `limit_per_step` records (by step id), oldest first: what a
    run's page shows. One query per step, each an index range."""
    found: dict[int, list[dict[str, Any]]] = {}
    for step in steps:
        latest = StepLog.objects.filter(run_id=step.run_id, step_id=step.id).order_by(
            "-attempt", "-sequence"
        )[:limit_per_step]
        found[step.id] = [line.as_record() for line in reversed(list(latest))]
    return found
