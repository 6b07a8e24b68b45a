-- The PostgreSQL store's statements (runs/store/postgres.py), each named by the comment
-- above it and loaded once by runs/store/queries.py. {run}, {step}, {attempt}, {steplog},
-- {pipeline}, {audit}, {rollup}, {queuepause}, {delivery} and {ratewindow} are the
-- models' tables; every other value is a bound parameter. Whole rows
-- are inserted as jsonb_populate_record(NULL::table, defaults || values), with `defaults`
-- derived from the models (runs/store/rows.py), so no statement lists columns by hand.
-- The clock is statement_timestamp() throughout: Django's Now() on PostgreSQL.
-- Each statement writes the columns its transition in runs/store/transitions.py names,
-- the way it names them: tests/runs/store/test_transitions.py holds them to it.


-- name: insert_runs
-- Runs, their steps, their audit events and one NOTIFY: one statement, so one round trip
-- (and its own transaction when none is open). The work is the function orbit_insert_runs
-- (runs/store/sql/functions.sql, created by a migration), whose plans PostgreSQL keeps
-- per session: sent as text, the same statement was planned anew on every call.
-- With a `pipeline` (PipelineCheck), nothing is written unless that row is enabled, not
-- archived, and still has the values the caller laid the runs out with: no row at all comes back then.
-- A run whose key or schedule slot is taken is answered with the id of the run holding it
-- when the function can see that run (one committed meanwhile is looked up by the caller).
-- `shared` holds what the runs have in common, `runs` what each has of its own.
SELECT * FROM orbit_insert_runs(
    %(runs)s::jsonb, %(shared)s::jsonb, %(pipeline)s::jsonb,
    %(run_defaults)s::jsonb, %(step_defaults)s::jsonb, %(audit_defaults)s::jsonb,
    %(step_sequence)s::regclass, %(audit_sequence)s::regclass, %(channel)s::text)


-- name: insert_run
-- One run as insert_runs writes a batch of one, through the function orbit_insert_run
-- (functions.sql), whose values arrive typed: the path of a single `enqueue`.
SELECT * FROM orbit_insert_run(
    %(id)s::uuid, %(pipeline_id)s::bigint, %(steps)s::text[], %(current_step)s::text,
    %(metadata)s::jsonb, %(priority)s::integer, %(queue)s::text,
    %(run_after)s::timestamptz, %(delay)s::float8, %(idempotency_key)s::text,
    %(unique_key)s::text, %(scheduled_for)s::timestamptz, %(rerun_of)s::uuid,
    %(trace_context)s::jsonb, %(action)s::text, %(source)s::text, %(user_id)s::integer,
    %(actor)s::text, %(ip_address)s::inet, %(target_type)s::text, %(target_repr)s::text,
    %(changes)s::jsonb, %(pipeline)s::jsonb, %(channel)s::text)


-- name: claim
-- The CLAIM transition for up to %(limit)s due runs of enabled, unarchived pipelines in
-- %(queues)s, neither paused (runs/pausing.py: a pause committed before this statement
-- starts is in its snapshot, so it takes none of the paused runs), each run's current step
-- started (STEP_START), the runs returned with their steps as they were: one round trip
-- starts work on a whole batch. With %(definitions)s (definition -> its step names), only
-- runs whose pipeline this claimant defines and whose every unfinished step it knows.
-- Runs under a flow limit are claimed by the limited path (portable.py `_claim_limited`,
-- under the limits' lock), never here. The statement is functions.sql `create_claim`.
SELECT * FROM orbit_claim(
    %(queues)s::text[], %(limit)s::int, %(worker)s::bigint, %(lease)s::float8,
    %(definitions)s::jsonb, %(limited_queues)s::text[])


-- name: commit
-- A batch of fenced outcomes (runs/store/records.py `Outcome`), all or nothing: the run's
-- transition, the attempt, the step's transition and the next step's start. The fenced
-- run update decides which rows go through and every other write joins on its result,
-- so a run whose fence failed gets nothing written. Each outcome arrives encoded by
-- runs/store/postgres.py `_encode` from its transitions, a row of one JSON document: a
-- NULL means "keep the column".
-- The statement is functions.sql `create_commit`.
SELECT * FROM orbit_commit(
    %(outcomes)s::json, %(attempt_defaults)s::jsonb, %(attempt_sequence)s::regclass)


-- name: append_logs
-- Step attempts' log records (runs.StepLog), streamed while they run: each only while its
-- run is running or cancelled under the writer's fence. FOR SHARE: a claim that takes the
-- run over meanwhile is seen (the row is re-checked), so a stale claimant writes nothing.
-- A record already there (a batch sent again after a lost acknowledgement) is skipped.
WITH input AS (
    SELECT x.value AS line, (x.value->>'run_id')::uuid AS run_id, (x.value->>'fence')::int AS fence
    FROM jsonb_array_elements(%(lines)s::jsonb) AS x(value)
),
holding AS (
    SELECT r.id, r.fence FROM {run} AS r
    WHERE r.id IN (SELECT DISTINCT run_id FROM input)
      AND r.status IN ('running', 'cancelled')
    FOR SHARE
)
INSERT INTO {steplog}
SELECT made.*
FROM input
JOIN holding ON holding.id = input.run_id AND holding.fence = input.fence
CROSS JOIN LATERAL jsonb_populate_record(
    NULL::{steplog},
    %(defaults)s::jsonb || input.line || jsonb_build_object(
        'id', nextval(%(sequence)s::regclass))
) AS made
ON CONFLICT DO NOTHING


-- name: take_interrupted
-- The RECOVER transition (QUARANTINE past %(max_interruptions)s) for every running run whose
-- lease expired (or only %(run_id)s), its running step's attempt recorded as interrupted
-- (STEP_INTERRUPT; STEP_QUARANTINE for a quarantined run's step). SKIP LOCKED: with several
-- workers sweeping at once, each run is taken once.
WITH expired AS (
    SELECT r.id, r.worker_id, r.current_step, r.interruptions + 1 AS interruptions,
           r.interruptions + 1 > %(max_interruptions)s AS quarantined
    FROM {run} AS r
    WHERE r.status = 'running' AND r.lease_expires_at < statement_timestamp()
      AND (%(run_id)s::uuid IS NULL OR r.id = %(run_id)s::uuid)
    FOR UPDATE SKIP LOCKED
),
explained AS (
    SELECT e.*,
           CASE WHEN e.quarantined THEN format(
               %(quarantine_error)s,
               e.interruptions,
               CASE WHEN e.current_step <> '' THEN format('in step %%L', e.current_step)
                    ELSE 'before its first step' END,
               %(max_interruptions)s::int)
           END AS error
    FROM expired AS e
),
taken AS (
    UPDATE {run} AS r
    SET status = CASE WHEN x.quarantined THEN 'failed' ELSE 'pending' END,
        worker_id = NULL,
        lease_expires_at = NULL,
        interruptions = r.interruptions + 1,
        finished_at = CASE WHEN x.quarantined THEN statement_timestamp() ELSE r.finished_at END,
        current_step = CASE WHEN x.quarantined THEN '' ELSE r.current_step END,
        error = COALESCE(x.error, r.error)
    FROM explained AS x
    WHERE r.id = x.id
    RETURNING r.id
),
running_steps AS (
    SELECT s.id, s.run_id, s.attempts, s.started_at, s.status, x.worker_id, x.quarantined, x.error
    FROM {step} AS s
    JOIN explained AS x ON s.run_id = x.id AND s.name = x.current_step
),
attempts AS (
    INSERT INTO {attempt}
    SELECT made.*
    FROM running_steps AS s
    CROSS JOIN LATERAL jsonb_populate_record(
        NULL::{attempt},
        %(attempt_defaults)s::jsonb || jsonb_build_object(
            'id', nextval(%(attempt_sequence)s::regclass),
            'step_id', s.id,
            'run_id', s.run_id,
            'number', s.attempts + 1,
            'outcome', 'interrupted',
            'error', %(interrupted_error)s::text,
            'error_type', %(interrupted_error_type)s::text,
            'started_at', s.started_at,
            'finished_at', statement_timestamp(),
            'worker_id', s.worker_id)
    ) AS made
    WHERE s.status = 'running'
),
stepped AS (
    UPDATE {step} AS s
    SET status = CASE WHEN rs.quarantined THEN 'failed' ELSE 'pending' END,
        attempts = s.attempts + CASE WHEN rs.status = 'running' THEN 1 ELSE 0 END,
        error = CASE WHEN rs.quarantined THEN rs.error ELSE s.error END
    FROM running_steps AS rs
    WHERE s.id = rs.id AND (rs.status = 'running' OR rs.quarantined)
)
SELECT x.id, x.current_step, x.worker_id, x.interruptions, x.quarantined, COALESCE(x.error, '')
FROM explained AS x
JOIN taken ON taken.id = x.id


-- name: announce
-- The payload: milliseconds until the run is due, or "cancel:<run id>".
SELECT pg_notify(%(channel)s, %(payload)s)


-- name: lock_limits
-- Serialises the claimers of runs under flow limits, until the transaction ends.
SELECT pg_advisory_xact_lock(%(key)s)


-- name: limits_state
-- What a claim under flow limits decides on (portable.py `_claim_limited`), read in one
-- statement after the limits' lock (its own statement, `lock_limits`, so this snapshot
-- holds every claim the lock's previous holder committed): the database clock; the
-- enabled pipelines with a limit (of those the claimant defines, %(definitions)s, or
-- all), in name order, each with how many of its runs are running; how many runs are
-- running in each of the limited queues %(queues)s; and every rate window. The portable
-- store reads the same in four statements (`_read_limits`).
SELECT
    extract(epoch FROM statement_timestamp())::float8,
    (SELECT COALESCE(json_agg(json_build_array(
                p.id, p.name, p.max_concurrency, p.rate_limit,
                (SELECT count(*) FROM {run} AS r
                 WHERE r.status = 'running' AND r.pipeline_id = p.id))
            ORDER BY p.name), '[]'::json)
     FROM {pipeline} AS p
     WHERE p.enabled AND (p.max_concurrency IS NOT NULL OR p.rate_limit <> '')
       AND (%(definitions)s::text[] IS NULL OR p.definition = ANY(%(definitions)s::text[]))),
    (SELECT COALESCE(json_object_agg(c.queue, c.n), '{{}}'::json)
     FROM (SELECT r.queue, count(*) AS n FROM {run} AS r
           WHERE r.status = 'running' AND r.queue = ANY(%(queues)s::text[])
           GROUP BY r.queue) AS c),
    (SELECT COALESCE(json_object_agg(w.name, w.starts), '{{}}'::json) FROM {ratewindow} AS w)


-- name: due_under_limits
-- The due runs each flow limit with room holds (portable.py `_due_under_limits`), up to
-- its bound, in claim order within each: per limited pipeline %(pipelines)s (with
-- %(pipeline_bounds)s) and per limited queue %(limited_queues)s (its runs of pipelines
-- no limit holds, with %(queue_bounds)s), on the claimant's queues %(queues)s, of the
-- pipelines it defines (%(definitions)s: definition -> step names, or NULL for all); each
-- limit read by an index in claim order, up to its bound, never row-locked. The
-- statement is functions.sql `create_due_under_limits`, which says how and why.
SELECT * FROM orbit_due_under_limits(
    %(pipelines)s::bigint[], %(pipeline_bounds)s::int[], %(limited_queues)s::text[],
    %(queue_bounds)s::int[], %(queues)s::text[], %(definitions)s::jsonb)


-- name: try_exclusive
-- Held until the transaction ends; another process asking meanwhile gets false at once.
SELECT pg_try_advisory_xact_lock(%(key)s)


-- name: estimated_rows
-- The row count as (auto)ANALYZE last saw it: free, and close enough to size a page.
SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%(table)s)


-- name: lazy_commit
-- This transaction's COMMIT does not wait for its WAL to reach the disk. For pruning only:
-- a batch lost in a crash loses nothing (its rows are still there, the rollups without
-- them), and pruning a backlog then costs the database's disk far less.
SET LOCAL synchronous_commit TO OFF


-- name: prunable_runs
-- Up to %(limit)s finished runs past their status's retention, oldest first, locked for
-- the pruning transaction. Rows another transaction holds (an operator retrying a failed
-- run) are skipped, never waited for. `finished_at < %(latest)s` walks run_finished_idx
-- from the oldest finished run; a NULL moment keeps that status.
SELECT r.id FROM {run} AS r
WHERE r.finished_at < %(latest)s
  AND r.finished_at < CASE r.status
      WHEN 'succeeded' THEN %(succeeded)s::timestamptz
      WHEN 'failed' THEN %(failed)s::timestamptz
      WHEN 'cancelled' THEN %(cancelled)s::timestamptz END
ORDER BY r.finished_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED


-- name: prune_runs
-- The runs %(ids)s (locked by prunable_runs), their attempts, steps and step logs, in one
-- statement (the foreign keys are checked at commit). Returns what the rollups need
-- (runs/store/rollups.py): a row per run and a row per attempt.
WITH gone_attempts AS (
    DELETE FROM {attempt} AS a WHERE a.run_id = ANY(%(ids)s::uuid[])
    RETURNING a.run_id, a.outcome, a.number, a.duration, a.finished_at
),
gone_logs AS (
    DELETE FROM {steplog} AS l WHERE l.run_id = ANY(%(ids)s::uuid[])
),
gone_steps AS (
    DELETE FROM {step} AS s WHERE s.run_id = ANY(%(ids)s::uuid[])
),
gone_runs AS (
    DELETE FROM {run} AS r WHERE r.id = ANY(%(ids)s::uuid[])
    RETURNING r.id, r.pipeline_id, r.status, r.running_time, r.finished_at
)
SELECT 'run', r.pipeline_id, r.status, r.running_time, r.finished_at, NULL::int, NULL::float8
FROM gone_runs AS r
UNION ALL
SELECT 'attempt', r.pipeline_id, a.outcome, NULL, a.finished_at, a.number, a.duration
FROM gone_attempts AS a JOIN gone_runs AS r ON r.id = a.run_id


-- name: add_rollups
-- Each hour's figures (runs/store/rollups.py `HourFigures`) added to its rollup row,
-- which starts at zero: counts and sums add, bucket lists add bucket by bucket, outcome
-- counts add key by key.
INSERT INTO {rollup} AS r
SELECT made.*
FROM jsonb_array_elements(%(rollups)s::jsonb) AS x(value)
CROSS JOIN LATERAL jsonb_populate_record(
    NULL::{rollup},
    %(rollup_defaults)s::jsonb || x.value || jsonb_build_object(
        'id', nextval(%(rollup_sequence)s::regclass))
) AS made
ON CONFLICT (pipeline_id, hour) DO UPDATE SET
    succeeded = r.succeeded + EXCLUDED.succeeded,
    failed = r.failed + EXCLUDED.failed,
    cancelled = r.cancelled + EXCLUDED.cancelled,
    run_durations = (
        SELECT COALESCE(
            jsonb_agg(COALESCE(b.old::bigint, 0) + COALESCE(b.new::bigint, 0) ORDER BY b.i),
            '[]'::jsonb)
        FROM ROWS FROM (jsonb_array_elements_text(r.run_durations),
                        jsonb_array_elements_text(EXCLUDED.run_durations))
             WITH ORDINALITY AS b(old, new, i)),
    run_seconds = r.run_seconds + EXCLUDED.run_seconds,
    attempts = (
        SELECT COALESCE(jsonb_object_agg(e.key, e.n), '{{}}'::jsonb)
        FROM (SELECT both_.key, sum(both_.value::bigint) AS n
              FROM (SELECT * FROM jsonb_each_text(r.attempts)
                    UNION ALL SELECT * FROM jsonb_each_text(EXCLUDED.attempts)) AS both_
              GROUP BY both_.key) AS e),
    retries = r.retries + EXCLUDED.retries,
    attempt_durations = (
        SELECT COALESCE(
            jsonb_agg(COALESCE(b.old::bigint, 0) + COALESCE(b.new::bigint, 0) ORDER BY b.i),
            '[]'::jsonb)
        FROM ROWS FROM (jsonb_array_elements_text(r.attempt_durations),
                        jsonb_array_elements_text(EXCLUDED.attempt_durations))
             WITH ORDINALITY AS b(old, new, i)),
    attempt_seconds = r.attempt_seconds + EXCLUDED.attempt_seconds


-- name: prune_audit
-- Up to %(limit)s audit events recorded before %(before)s, oldest first (audit_created_idx).
WITH gone AS (
    DELETE FROM {audit} WHERE id IN (
        SELECT a.id FROM {audit} AS a
        WHERE a.created_at < %(before)s
        ORDER BY a.created_at
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED)
    RETURNING 1
)
SELECT count(*) FROM gone
