"""What a webhook delivery says about its run: ids, names, status, timings, a link.

Never the run's metadata: it may carry credentials (orbit/core/redaction.py masks them
on every page; a receiver is outside Orbit, so it gets none at all). The event's own
details (step, attempt, error type, the error as stored: secrets masked) are masked once
more for good measure.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.urls import NoReverseMatch, reverse

from orbit.core.conf import orbit_settings
from orbit.core.redaction import redact_text
from runs.models import Run

VERSION = 1


def run_link(run_id: uuid.UUID) -> str:
    """The run's dashboard page: absolute when ORBIT_BASE_URL is set, else a path."""
    try:
        path = reverse("dashboard:run", kwargs={"run_id": run_id})
    except NoReverseMatch:
        path = f"/dashboard/runs/{run_id}/"
    return f"{orbit_settings.base_url}{path}"


def _stamp(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _detail(value: Any) -> Any:
    return redact_text(value) if isinstance(value, str) else value


def payload(
    *, delivery_id: uuid.UUID, event: str, run: Run, details: Mapping[str, Any]
) -> dict[str, Any]:
    """The JSON body of one delivery."""
    return {
        "version": VERSION,
        "id": str(delivery_id),
        "event": event,
        "run": {
            "id": str(run.id),
            "pipeline": run.pipeline.name,
            "status": run.status,
            "queue": run.queue,
            "current_step": run.current_step or None,
            "error": redact_text(run.error) or None,
            "interruptions": run.interruptions,
            "created_at": _stamp(run.created_at),
            "started_at": _stamp(run.started_at),
            "finished_at": _stamp(run.finished_at),
            "running_time": run.running_time,
            "url": run_link(run.id),
        },
        "details": {key: _detail(value) for key, value in details.items()},
    }
