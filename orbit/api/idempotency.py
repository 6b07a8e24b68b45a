"""Idempotency-Key on the API: scoped to the caller, and bound to the request it came with.

A key is stored as `api:<user id>:<key>`, so one caller's key can never return another
caller's run (a replayed or guessed key just makes a run of one's own), and `/api/runs`
shows each run's key as its caller sent it. Repeating a key with a different request is
a 409: the metadata (merged over the pipeline's defaults, as the run holds it) and the
priority must be the same, secret values (ORBIT_REDACT_KEYS, a URL's password) compared as
masked: a repeat that differs in a secret value alone returns the first run, so a caller
who sees a pipeline's secret defaults masked cannot test guesses of them. A pipeline
whose defaults changed between the two requests is refused too; a new key is the answer then.
"""

from __future__ import annotations

import re
from typing import Any

from orbit.core.exceptions import IdempotencyConflict
from pipelines.models import Pipeline
from runs.enqueueing import same_request
from runs.models import Run

_SCOPED = re.compile(r"^api:\d+:")

__all__ = ["IdempotencyConflict", "client_key", "ensure_same_request", "scoped_key"]


def scoped_key(user_id: Any, key: str | None) -> str | None:
    """The key as stored for this caller; None when no key was sent."""
    return None if key is None else f"api:{user_id}:{key}"


def client_key(stored: str | None) -> str | None:
    """A stored key as its caller sent it (keys made by code are shown as they are)."""
    return None if stored is None else _SCOPED.sub("", stored, count=1)


def ensure_same_request(
    run: Run, pipeline: Pipeline, metadata: dict[str, Any] | None, priority: int
) -> None:
    """IdempotencyConflict unless `run` is what this request would have created (the rule
    is runs.enqueueing.same_request; only the key shown is the API's own). Secret values
    are compared masked, as the API shows them: a caller may not see them, so its answer
    must not depend on them."""
    if same_request(run, pipeline, metadata, priority, masked=True):
        return
    raise IdempotencyConflict(
        f"Idempotency-Key {client_key(run.idempotency_key)!r} was already used for a "
        f"different request (run {run.id}): repeat it with the same metadata and priority, "
        "or use a new key"
    )
