"""Creating a run in one statement on PostgreSQL: the enqueue hot path.

Through the ORM a run costs seven round trips (BEGIN, the run, its steps, its audit event,
NOTIFY, COMMIT, and the pipeline lookup before them). Here the run, its steps, its audit
event and the NOTIFY are one statement, which is its own transaction when none is open
(and a savepoint inside one, so a conflict on an idempotency key or a schedule slot
undoes only this). SQLite keeps the ORM path in runs/lifecycle.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection, transaction
from psycopg.types.json import Jsonb

from orbit.core.models import AuditEvent
from runs.models import Run, Step
from runs.notify import CHANNEL

_INSERT = f"""
WITH run AS (
    INSERT INTO {Run._meta.db_table} (
        id, pipeline_id, status, metadata, priority, queue, available_at, attempt, worker_id,
        lease_expires_at, current_step, interruptions, started_at, finished_at, error,
        idempotency_key, scheduled_for, created_at)
    VALUES (
        %(id)s, %(pipeline)s, 'pending', %(metadata)s, %(priority)s, %(queue)s,
        statement_timestamp(), 0, NULL, NULL, '', 0, NULL, NULL, '', %(key)s,
        %(scheduled_for)s, statement_timestamp())
    RETURNING id, available_at, created_at
),
steps AS (
    INSERT INTO {Step._meta.db_table} (
        run_id, name, position, status, attempts, failures, result, error, error_type,
        traceback, logs, started_at, finished_at, duration)
    SELECT run.id, s.name, s.ordinal - 1, 'pending', 0, 0, NULL, '', '', '', '[]'::jsonb,
           NULL, NULL, NULL
    FROM run, unnest(%(steps)s::text[]) WITH ORDINALITY AS s(name, ordinal)
),
audit AS (
    INSERT INTO {AuditEvent._meta.db_table} (
        created_at, action, source, user_id, actor, ip_address, target_type, target_id,
        target_repr, changes)
    SELECT statement_timestamp(), %(action)s, %(source)s, %(user_id)s, %(actor)s,
           %(ip_address)s::inet, %(target_type)s, %(target_id)s, %(target_repr)s, %(changes)s
    FROM run
)
SELECT available_at, created_at, pg_notify(%(channel)s, '0') FROM run
"""


def insert_run(run: Run, steps: Sequence[str], audit: dict[str, Any]) -> Run:
    """Insert `run` (an unsaved instance with its id set), its steps in order and its audit
    event (`orbit.core.audit.event_values`), and announce it; returns `run`, now saved."""
    params = {
        "id": run.id,
        "pipeline": run.pipeline_id,
        "metadata": Jsonb(run.metadata),
        "priority": run.priority,
        "queue": run.queue,
        "key": run.idempotency_key,
        "scheduled_for": run.scheduled_for,
        "steps": list(steps),
        **{**audit, "changes": Jsonb(audit["changes"])},
        "channel": CHANNEL,
    }
    if connection.in_atomic_block:
        with transaction.atomic():  # a savepoint: a conflict undoes only this run
            row = _execute(params)
    else:
        row = _execute(params)
    run.available_at, run.created_at = row[0], row[1]
    run._state.adding = False
    run._state.db = connection.alias
    return run


def _execute(params: dict[str, Any]) -> tuple[Any, ...]:
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, params)
        return tuple(cursor.fetchone())
