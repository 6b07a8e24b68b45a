"""Run pipelines: `from runs import enqueue` queues a run for the workers
(runs/enqueueing.py; the options are in docs/FLOW-CONTROL.md)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runs.models import Run


def enqueue(
    name: str,
    metadata: dict[str, Any] | None = None,
    *,
    queue: str | None = None,
    priority: int = 0,
    run_after: datetime | None = None,
    delay: timedelta | float | None = None,
    idempotency_key: str | None = None,
    unique_key: str | None = None,
) -> Run:
    """Queue a run of the pipeline called `name`; validated, committed, and announced to
    workers (runs.enqueueing.enqueue, imported when called so `runs` loads before Django)."""
    from runs.enqueueing import enqueue as _enqueue

    return _enqueue(
        name,
        metadata,
        queue=queue,
        priority=priority,
        run_after=run_after,
        delay=delay,
        idempotency_key=idempotency_key,
        unique_key=unique_key,
    )


def enqueue_many(
    name: str,
    metadatas: list[dict[str, Any] | None],
    *,
    queue: str | None = None,
    priority: int = 0,
    run_after: datetime | None = None,
    delay: timedelta | float | None = None,
    idempotency_keys: list[str | None] | None = None,
    unique_keys: list[str | None] | None = None,
) -> list[Run]:
    """Queue one run per metadata in one insert (runs.enqueueing.enqueue_many); the keys,
    when given, one per run."""
    from runs.enqueueing import enqueue_many as _enqueue_many

    return _enqueue_many(
        name,
        metadatas,
        queue=queue,
        priority=priority,
        run_after=run_after,
        delay=delay,
        idempotency_keys=idempotency_keys,
        unique_keys=unique_keys,
    )


__all__ = ["enqueue", "enqueue_many"]
