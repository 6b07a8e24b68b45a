"""What a step function receives, and what it may return instead of plain data."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class StepContext:
    """The run's input and history as the step sees it.

    `prev_results` is rebuilt from the database on every attempt, so a resumed run sees
    exactly what an uninterrupted one would. `idempotency_key` is stable for one run and
    step across attempts and resumes: use it as the key of anything the step creates
    outside Orbit.
    """

    run_id: str
    pipeline: str
    step: str
    metadata: dict[str, Any]
    prev_results: dict[str, Any]
    attempt: int
    idempotency_key: str
    log: logging.Logger
    deadline: datetime | None


@dataclass(frozen=True)
class StepResult:
    """Return this to report a failure without raising, or success with data."""

    success: bool
    data: Any = None
    error: str = ""
    retryable: bool = True
    details: dict[str, Any] = field(default_factory=dict)
