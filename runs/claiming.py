"""Claiming runs: the only way a run becomes `running`.

A claim increments the run's `attempt`, which is the fencing token: every later write by
the claimant is conditional on it (see runs/execution.py), so a worker that lost its
lease writes nothing. Claiming must stay one short transaction: it holds row locks that
every other worker's claim skips over.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Now

from pipelines.models import Pipeline
from runs.models import Run, RunStatus, db_now_plus


@dataclass(frozen=True)
class Claim:
    """A run held by one claimant under one fencing token."""

    run_id: uuid.UUID
    attempt: int
    worker_id: int | None
    pipeline: str
    definition: str
    metadata: dict[str, Any]


_PG_CLAIM = f"""
WITH candidates AS (
    SELECT id FROM {Run._meta.db_table}
    WHERE status = 'pending'
      AND queue = ANY(%(queues)s)
      AND available_at <= now()
      AND pipeline_id IN (SELECT id FROM {Pipeline._meta.db_table} WHERE enabled)
    ORDER BY priority DESC, available_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE {Run._meta.db_table} AS r
SET status = 'running',
    attempt = r.attempt + 1,
    worker_id = %(worker)s,
    lease_expires_at = now() + make_interval(secs => %(lease)s),
    started_at = COALESCE(r.started_at, now())
FROM candidates, {Pipeline._meta.db_table} AS p
WHERE r.id = candidates.id AND p.id = r.pipeline_id
RETURNING r.id, r.attempt, p.name, p.definition, r.metadata
"""


def claim_runs(
    *, worker_id: int | None, limit: int, queues: Sequence[str], lease_seconds: float
) -> list[Claim]:
    """Claim up to `limit` due runs: highest priority first, then the longest waiting."""
    if limit <= 0:
        return []
    if connection.vendor == "postgresql":
        return _claim_postgres(worker_id, limit, list(queues), lease_seconds)
    with transaction.atomic():  # IMMEDIATE on SQLite: the write lock is taken at BEGIN
        ids = list(
            Run.objects.claimable()
            .filter(queue__in=queues)
            .order_by("-priority", "available_at")
            .values_list("id", flat=True)[:limit]
        )
        return _mark_claimed(ids, worker_id, lease_seconds)


def claim_run(run_id: uuid.UUID, *, worker_id: int | None, lease_seconds: float) -> Claim | None:
    """Claim one particular pending run now, whatever its queue, priority or due time."""
    with transaction.atomic():
        ids = list(
            Run.objects.select_for_update()
            .filter(id=run_id, status=RunStatus.PENDING)
            .values_list("id", flat=True)
        )
        claims = _mark_claimed(ids, worker_id, lease_seconds)
    return claims[0] if claims else None


def _mark_claimed(ids: list[uuid.UUID], worker_id: int | None, lease_seconds: float) -> list[Claim]:
    if not ids:
        return []
    Run.objects.filter(id__in=ids, status=RunStatus.PENDING).update(
        status=RunStatus.RUNNING,
        attempt=F("attempt") + 1,
        worker_id=worker_id,
        lease_expires_at=db_now_plus(lease_seconds),
        started_at=Coalesce(F("started_at"), Now()),
    )
    rows = Run.objects.filter(
        id__in=ids,
        status=RunStatus.RUNNING,
        worker_id=worker_id,  # type: ignore[misc]
    ).values_list("id", "attempt", "pipeline__name", "pipeline__definition", "metadata")
    return [Claim(r[0], r[1], worker_id, r[2], r[3], r[4]) for r in rows]


def _claim_postgres(
    worker_id: int | None, limit: int, queues: list[str], lease_seconds: float
) -> list[Claim]:
    with connection.cursor() as cursor:
        cursor.execute(
            _PG_CLAIM,
            {"queues": queues, "limit": limit, "worker": worker_id, "lease": lease_seconds},
        )
        rows = cursor.fetchall()
    return [
        Claim(
            run_id=row[0],
            attempt=row[1],
            worker_id=worker_id,
            pipeline=row[2],
            definition=row[3],
            metadata=row[4] if isinstance(row[4], dict) else _json(row[4]),
        )
        for row in rows
    ]


def _json(value: Any) -> dict[str, Any]:
    import json

    return dict(json.loads(value)) if value else {}
