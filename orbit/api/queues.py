"""/api/queues: the queues with their pending and running runs, and pausing and resuming
one (an operator's act, like operating runs: runs.operate_run). A queue needs no declaring,
so any valid name may be paused ahead of its first run."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router

from orbit.api.runs import ACT_ON_RUNS, ERRORS, VIEW_RUNS, api_actor
from orbit.api.schemas.pipelines import PauseIn
from orbit.api.schemas.queues import QueueOut
from orbit.api.schemas.runs import ErrorOut
from runs.pausing import QueueState, queue_pause, queue_resume, queue_states

router = Router(tags=["queues"])

#: Requests with a JSON body may also be malformed (400) or too large (413).
BODY_ERRORS: dict[int, Any] = {**ERRORS, 400: ErrorOut, 413: ErrorOut}


@router.get("", response={200: list[QueueOut], **ERRORS}, auth=VIEW_RUNS)
def list_queues(request: HttpRequest) -> Any:
    """Every queue with pending or running runs, and every paused queue, by name."""
    return [_out(state) for state in queue_states()]


@router.post("/{name}/pause", response={200: QueueOut, **BODY_ERRORS}, auth=ACT_ON_RUNS)
def pause_queue(request: HttpRequest, name: str, payload: PauseIn | None = None) -> Any:
    """Pause the queue: its pending runs wait, new ones are accepted and wait, running ones
    finish. Pausing a paused queue keeps the first pause (who, when, why). 422: a name that
    breaks the queue naming rule."""
    queue_pause(name, reason=payload.reason if payload else "", actor=api_actor(request))
    return _state(name)


@router.post("/{name}/resume", response={200: QueueOut, **ERRORS}, auth=ACT_ON_RUNS)
def resume_queue(request: HttpRequest, name: str) -> Any:
    """Resume the queue: idle workers serving it claim its runs at once. Resuming a queue
    that is not paused changes nothing."""
    queue_resume(name, actor=api_actor(request))
    return _state(name)


def _state(name: str) -> dict[str, Any]:
    found = next((s for s in queue_states() if s.queue == name), None)
    return _out(found or QueueState(name, 0, 0, 0, None))


def _out(state: QueueState) -> dict[str, Any]:
    pause = state.pause
    return {
        "queue": state.queue,
        "pending": state.pending,
        "due": state.due,
        "running": state.running,
        "paused": pause is not None,
        "paused_at": pause.paused_at if pause else None,
        "paused_by": pause.paused_by if pause else "",
        "pause_reason": pause.reason if pause else "",
    }
