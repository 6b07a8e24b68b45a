"""Run pipelines: `from runs import enqueue` queues a run for the workers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runs.models import Run


def enqueue(name: str, metadata: dict[str, Any] | None = None, priority: int = 0) -> Run:
    """Queue a run of the pipeline called `name`; validated, committed, and announced to workers."""
    from runs.lifecycle import run_create

    return run_create(name, metadata=metadata, priority=priority)


__all__ = ["enqueue"]
