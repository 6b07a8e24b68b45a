"""Committing many successful attempts in one statement: the worker's hot path on PostgreSQL.

A worker with several slots finishes steps in bursts; writing each success in its own
transaction (fence the run, insert the attempt, finish the step, start the next) costs
five round trips and a commit per step. Here one statement does all of it for a batch:
the fenced run update decides which rows go through, and every other write joins on its
result, so a run whose fence fails gets nothing written, exactly as in
`execution._record_success`. The statement is one implicit transaction: all or nothing.

Only plain successes come here (no log records to append, next step known from the
claim's snapshot); everything else takes `execution.record`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection

from runs.models import Run, Step, StepAttempt


@dataclass(frozen=True)
class Success:
    """One attempt to commit: the run it finishes or moves on to `next_step_id`."""

    run_id: uuid.UUID
    fence: int  # the claim's attempt number
    step_id: int
    number: int  # the attempt's number for its step
    result_json: str | None
    duration: float
    next_step_id: int | None
    next_step: str  # "" when the run is finished


_RUN = Run._meta.db_table
_STEP = Step._meta.db_table
_ATTEMPT = StepAttempt._meta.db_table

_COMMIT = f"""
WITH input AS (
    SELECT * FROM unnest(
        %(run_ids)s::uuid[], %(fences)s::int[], %(step_ids)s::bigint[], %(numbers)s::int[],
        %(results)s::text[], %(durations)s::float8[], %(next_ids)s::bigint[],
        %(next_names)s::text[]
    ) AS i(run_id, fence, step_id, number, result, duration, next_id, next_name)
),
fenced AS (
    UPDATE {_RUN} AS r
    SET status = CASE WHEN i.next_id IS NULL THEN 'succeeded' ELSE 'running' END,
        finished_at = CASE WHEN i.next_id IS NULL THEN statement_timestamp() END,
        lease_expires_at = CASE WHEN i.next_id IS NOT NULL
            THEN statement_timestamp() + make_interval(secs => %(lease)s) END,
        current_step = i.next_name
    FROM input AS i
    -- `status || ''`: look runs up by primary key. Compared bare, the planner may scan the
    -- status index instead, which holds an entry for every run that was ever running.
    WHERE r.id = i.run_id AND r.attempt = i.fence AND r.status || '' = 'running'
    RETURNING r.id
),
ok AS (SELECT i.* FROM input AS i JOIN fenced AS f ON f.id = i.run_id),
attempts AS (
    INSERT INTO {_ATTEMPT} (step_id, run_id, number, outcome, error, error_type, traceback,
                            started_at, finished_at, duration, backoff_delay, worker_id)
    SELECT step_id, run_id, number, 'succeeded', '', '', '',
           statement_timestamp() - make_interval(secs => duration), statement_timestamp(),
           duration, NULL, %(worker)s
    FROM ok
),
finished AS (
    UPDATE {_STEP} AS s
    SET status = 'succeeded', result = ok.result::jsonb, finished_at = statement_timestamp(),
        duration = ok.duration, attempts = s.attempts + 1,
        error = '', error_type = '', traceback = ''
    FROM ok WHERE s.id = ok.step_id
),
started AS (
    UPDATE {_STEP} AS s SET status = 'running', started_at = statement_timestamp()
    FROM ok WHERE s.id = ok.next_id
)
SELECT id FROM fenced
"""


def commit_successes(
    successes: Sequence[Success], *, worker_id: int | None, lease_seconds: float
) -> set[uuid.UUID]:
    """Commit the batch; the ids of the runs whose fence held (the rest wrote nothing)."""
    if not successes:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            _COMMIT,
            {
                "run_ids": [s.run_id for s in successes],
                "fences": [s.fence for s in successes],
                "step_ids": [s.step_id for s in successes],
                "numbers": [s.number for s in successes],
                "results": [
                    None if s.result_json in (None, "null") else s.result_json for s in successes
                ],
                "durations": [s.duration for s in successes],
                "next_ids": [s.next_step_id for s in successes],
                "next_names": [s.next_step for s in successes],
                "worker": worker_id,
                "lease": lease_seconds,
            },
        )
        return {row[0] for row in cursor.fetchall()}
