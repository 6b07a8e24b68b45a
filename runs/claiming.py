"""Claiming runs: the only way a run becomes `running`.

A claim increments the run's `attempt`, which is the fencing token: every later write by
the claimant is conditional on it (see runs/execution.py), so a worker that lost its
lease writes nothing. Claiming must stay one short transaction: it holds row locks that
every other worker's claim skips over.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Now

from pipelines.models import Pipeline
from runs.models import Run, RunStatus, Step, db_now_plus


@dataclass(frozen=True)
class StepRow:
    """A step as the claim found it; valid for the whole claim, since only the claimant
    writes a running run's steps (anyone else is refused by the fence first)."""

    id: int
    name: str
    status: str
    result: Any
    attempts: int
    failures: int


@dataclass(frozen=True)
class Claim:
    """A run held by one claimant under one fencing token.

    `steps` is the run's steps in position order when the claim read them (the PostgreSQL
    claim does, and marks the first unfinished one running in the same statement), so
    starting and finishing steps needs no further reads; None when the claimant must look.
    """

    run_id: uuid.UUID
    attempt: int
    worker_id: int | None
    pipeline: str
    definition: str
    metadata: dict[str, Any]
    steps: tuple[StepRow, ...] | None = None

    @property
    def started_step(self) -> StepRow | None:
        """The step the claim marked running: the first unfinished one by position."""
        if self.steps is None:
            return None
        return next((s for s in self.steps if s.status != "succeeded"), None)


_RUN = Run._meta.db_table
_STEP = Step._meta.db_table

# Claims runs, marks each one's first unfinished step running, and returns the runs with
# their steps: one round trip starts work on a whole batch.
_PG_CLAIM_TEMPLATE = f"""
WITH candidates AS (
    SELECT id FROM {_RUN}
    WHERE status = 'pending'
      AND {{queue_filter}}
      AND available_at <= now()
      AND pipeline_id IN (SELECT id FROM {Pipeline._meta.db_table} WHERE enabled)
    ORDER BY priority DESC, available_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
claimed AS (
    UPDATE {_RUN} AS r
    SET status = 'running',
        attempt = r.attempt + 1,
        worker_id = %(worker)s,
        lease_expires_at = now() + make_interval(secs => %(lease)s),
        started_at = COALESCE(r.started_at, now()),
        current_step = COALESCE(
            (SELECT s.name FROM {_STEP} AS s
             WHERE s.run_id = r.id AND s.status <> 'succeeded'
             ORDER BY s.position LIMIT 1),
            ''
        )
    FROM candidates, {Pipeline._meta.db_table} AS p
    WHERE r.id = candidates.id AND p.id = r.pipeline_id
    RETURNING r.id, r.attempt, p.name, p.definition, r.metadata, r.current_step
),
started AS (
    UPDATE {_STEP} AS s SET status = 'running', started_at = now()
    FROM claimed AS c
    WHERE s.run_id = c.id AND s.name = c.current_step
)
SELECT c.id, c.attempt, c.name, c.definition, c.metadata,
       (SELECT json_agg(
                   json_build_array(s.id, s.name, s.status, s.result, s.attempts, s.failures)
                   ORDER BY s.position)
        FROM {_STEP} AS s WHERE s.run_id = c.id)
FROM claimed AS c
"""
# One queue (the usual case) as an equality, so run_claimable_idx yields the runs already
# in claim order and the scan stops at LIMIT; ANY() over one element would sort them all.
_PG_CLAIM_ONE_QUEUE = _PG_CLAIM_TEMPLATE.replace("{queue_filter}", "queue = %(queue)s")
_PG_CLAIM_QUEUES = _PG_CLAIM_TEMPLATE.replace("{queue_filter}", "queue = ANY(%(queues)s)")


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
            _PG_CLAIM_ONE_QUEUE if len(queues) == 1 else _PG_CLAIM_QUEUES,
            {
                "queue": queues[0] if queues else None,
                "queues": queues,
                "limit": limit,
                "worker": worker_id,
                "lease": lease_seconds,
            },
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
            steps=tuple(StepRow(*step) for step in _json_list(row[5])),
        )
        for row in rows
    ]


def _json(value: Any) -> dict[str, Any]:
    return dict(json.loads(value)) if value else {}


def _json_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else list(json.loads(value))
