-- PL/pgSQL functions of the PostgreSQL store, each created by a migration from the
-- statement named here (runs/migrations/0016_insert_runs_function.py,
-- 0017_claim_commit_functions.py, 0018_insert_runs_shared_values.py,
-- 0021_claim_by_pipeline.py, 0022_claim_and_commit_by_index.py,
-- 0023_claim_and_commit_without_scans.py, 0024_insert_run_function.py), with the same
-- table names as runs.sql filled in, and called by one named statement of runs.sql each;
-- and, last, the trigger function that keeps a run's tree whole on DELETE, with its two
-- triggers (0026).
-- Why a function: Django binds parameters in the client, so PostgreSQL parses and plans
-- a statement sent as text on every call; for the big insert_runs statement planning
-- cost as much as running it. A server-prepared statement would keep the plan, but a
-- pooler in transaction mode (PgBouncer) cannot route those. The statements inside a
-- PL/pgSQL function are planned once per database session and the plans kept (custom
-- plans for the first five calls, then a generic one), whatever pooler sits in front;
-- a change to a table they use (a new column) makes PostgreSQL plan them again.
-- A database already migrated keeps the function it was given: changing one here needs a
-- new migration that creates it again (CREATE OR REPLACE) and declares the new text's
-- SOURCE_SHA256; tests/runs/store/test_functions.py fails until it does.


-- name: create_pipeline_as_read
-- Whether the pipeline row is enabled, not archived and still has the values a caller
-- laid its runs out with (`p_pipeline`, a PipelineCheck: perhaps read from a cached copy,
-- pipelines/lookup.py), the row locked FOR SHARE if so: a disable in progress is waited
-- for and then seen, and one that starts meanwhile waits for the caller's runs to
-- commit. The rule both insert functions write runs under.
CREATE OR REPLACE FUNCTION orbit_pipeline_as_read(p_pipeline jsonb) RETURNS boolean
LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM FROM {pipeline} AS p
    WHERE p.id = (p_pipeline->>'id')::bigint
      AND p.enabled
      AND p.archived_at IS NULL
      AND p.name = p_pipeline->>'name'
      AND p.definition = p_pipeline->>'definition'
      AND p.default_metadata = p_pipeline->'default_metadata'
    FOR SHARE;
    RETURN FOUND;
END
$function$


-- name: drop_pipeline_as_read
DROP FUNCTION IF EXISTS orbit_pipeline_as_read(jsonb)


-- name: create_pipelines_held
-- Whether runs of the pipelines `p_ids` may be inserted, holding each of those rows until
-- the transaction ends: false, writing nothing, when the caller's check (`p_pipeline`, a
-- PipelineCheck) finds its row changed (`orbit_pipeline_as_read`, which locks it FOR
-- SHARE); every other pipeline locked as a foreign key's check would lock it (FOR KEY
-- SHARE: no DELETE of the row until this transaction ends), or foreign_key_violation
-- naming one that does not exist. What the constraint from a run to its pipeline checked
-- on every run inserted, once for a whole batch (migration 0026 dropped the constraint);
-- the one rule both insert functions follow. A DELETE of a pipeline that committed
-- meanwhile is seen (each statement of a function takes a new snapshot).
CREATE OR REPLACE FUNCTION orbit_pipelines_held(p_pipeline jsonb, p_ids bigint[])
RETURNS boolean
LANGUAGE plpgsql
AS $function$
DECLARE
    missing bigint;
BEGIN
    IF p_pipeline IS NOT NULL THEN
        IF NOT orbit_pipeline_as_read(p_pipeline) THEN
            RETURN false;
        END IF;
        p_ids := array_remove(p_ids, (p_pipeline->>'id')::bigint);
    END IF;
    IF cardinality(p_ids) > 0 THEN
        PERFORM FROM {pipeline} AS p WHERE p.id = ANY(p_ids) FOR KEY SHARE;
        SELECT wanted INTO missing
        FROM unnest(p_ids) AS wanted
        WHERE NOT EXISTS (SELECT FROM {pipeline} AS p WHERE p.id = wanted)
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'pipeline % does not exist', missing
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    END IF;
    RETURN true;
END
$function$


-- name: drop_pipelines_held
DROP FUNCTION IF EXISTS orbit_pipelines_held(jsonb, bigint[])


-- name: create_run_holding
-- The run of the pipeline that holds a new run's idempotency key, its unique key (while
-- pending or running) or its schedule slot, which the new run was not inserted for; NULL
-- when this statement cannot see it (one committed meanwhile: the caller looks it up).
-- The rule both insert functions answer a skipped run with.
CREATE OR REPLACE FUNCTION orbit_run_holding(
    p_pipeline_id bigint,
    p_idempotency_key text,
    p_unique_key text,
    p_scheduled_for timestamptz
) RETURNS uuid
LANGUAGE plpgsql
STABLE
AS $function$
BEGIN
    RETURN (
        SELECT r.id
        FROM {run} AS r
        WHERE r.pipeline_id = p_pipeline_id
          AND (r.idempotency_key = p_idempotency_key
               OR (r.unique_key = p_unique_key AND r.status IN ('pending', 'running'))
               OR r.scheduled_for = p_scheduled_for)
        LIMIT 1
    );
END
$function$


-- name: drop_run_holding
DROP FUNCTION IF EXISTS orbit_run_holding(bigint, text, text, timestamptz)


-- name: create_insert_runs
-- The insert_runs statement of runs.sql: runs, their steps, their audit events and one
-- NOTIFY. With `p_pipeline` (PipelineCheck), nothing is written unless that row is
-- as the caller read it: no row at all comes back then, and the caller reads the
-- pipeline again. Every run's pipeline is held (locked) until the transaction ends
-- (`orbit_pipelines_held`: the check a foreign key made for each run, once a batch).
-- A run whose idempotency key, unique key (held by a pending or running run) or schedule
-- slot is taken is skipped and answered with the id of the run holding it
-- (`orbit_run_holding`).
-- What runs share is sent once (`p_shared`: the first run's values, with its `_steps`,
-- `_run_after`, `_delay` and `_audit`) and each run carries only its id and what differs
-- (`p_runs`, in order; an `_audit` of its own lists only the event's columns that
-- differ). With `_label_prefix`, an event names its run by it and the run's id (the
-- name runs/enqueueing.py gives a run), unless its own `_audit` names it. The runs'
-- shared row is built once per statement (the scalar subquery, an InitPlan) and each
-- run's row from it by jsonb_populate_record over the few values of its own, in a
-- LATERAL join, once per row: merging the whole defaults, run and event
-- into one jsonb per row and reading every column back from text was most of a large
-- batch's time. The steps and the audit events name their columns (a row of defaults
-- built once, and for an event the few columns a run sets itself, by name): laid out by
-- jsonb_populate_record as the runs are, they made a 10,000-run batch's statement ~10%
-- slower (docs/PERFORMANCE.md, "Steps and events by name"). The defaults come from the models on
-- every call (runs/store/rows.py), so a new run column is written with its model's
-- default without a new version of this function; a new step or audit column needs one
-- (tests/runs/store/test_functions.py fails until it has it).
-- Rows come back in the runs' order: whether each was inserted, the run holding its key
-- or slot if not, and its stamps as microseconds since the epoch (a bigint is read in C;
-- a timestamptz through Django's loader costs several microseconds a value in Python).
CREATE OR REPLACE FUNCTION orbit_insert_runs(
    p_runs jsonb,
    p_shared jsonb,
    p_pipeline jsonb,
    p_run_defaults jsonb,
    p_step_defaults jsonb,
    p_audit_defaults jsonb,
    p_step_sequence regclass,
    p_audit_sequence regclass,
    p_channel text
) RETURNS TABLE (created boolean, held_by uuid, created_us bigint, available_us bigint)
LANGUAGE plpgsql
AS $function$
DECLARE
    v_pipelines bigint[] := ARRAY[(p_shared->>'pipeline_id')::bigint];
BEGIN
    IF jsonb_path_exists(p_runs, '$[*].pipeline_id') THEN  -- runs of other pipelines too
        v_pipelines := ARRAY(
            SELECT DISTINCT COALESCE((x.value->>'pipeline_id')::bigint, v_pipelines[1])
            FROM jsonb_array_elements(p_runs) AS x(value));
    END IF;
    IF NOT orbit_pipelines_held(p_pipeline, v_pipelines) THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH input AS (
        SELECT x.ordinality AS ordinal, x.value AS own, (x.value->>'id')::uuid AS id
        FROM jsonb_array_elements(p_runs) WITH ORDINALITY AS x(value, ordinality)
    ),
    inserted AS (
        INSERT INTO {run}
        SELECT made.*
        FROM input
        CROSS JOIN LATERAL jsonb_populate_record(
            (SELECT jsonb_populate_record(
                NULL::{run},
                p_run_defaults || p_shared || jsonb_build_object(
                    'created_at', statement_timestamp(),
                    'available_at', COALESCE(
                        (p_shared->>'_run_after')::timestamptz,
                        statement_timestamp()
                            + make_interval(secs => (p_shared->>'_delay')::float8))))),
            CASE WHEN input.own ? '_run_after' OR input.own ? '_delay'
                THEN input.own || jsonb_build_object('available_at', COALESCE(
                    (CASE WHEN input.own ? '_run_after' THEN input.own ELSE p_shared END
                    ->>'_run_after')::timestamptz,
                    statement_timestamp() + make_interval(secs => (
                        CASE WHEN input.own ? '_delay' THEN input.own ELSE p_shared END
                    ->>'_delay')::float8)))
                ELSE input.own END
        ) AS made
        ORDER BY input.ordinal
        ON CONFLICT DO NOTHING
        RETURNING {run}.id, {run}.created_at, {run}.available_at
    ),
    -- each run with its row as inserted, if it was: one join for the steps, the audit
    -- events and the answer
    joined AS (
        SELECT input.ordinal, input.own, input.id, inserted.id AS made_id,
            inserted.created_at, inserted.available_at
        FROM input
        LEFT JOIN inserted ON inserted.id = input.id
    ),
    -- the steps' and events' columns are named, each value taken from the row of
    -- defaults built once (or, for an event's column a run sets, from the run's own):
    -- laying each row out by jsonb_populate_record cost more than its insert
    step_defaults AS MATERIALIZED (
        SELECT * FROM jsonb_populate_record(NULL::{step}, p_step_defaults)
    ),
    steps AS (
        INSERT INTO {step} (
            id, run_id, name, position, status, attempts, failures, result, error,
            error_type, traceback, started_at, finished_at, duration)
        SELECT nextval(p_step_sequence), joined.made_id, step.name, step.ordinality - 1,
            d.status, d.attempts, d.failures, d.result, d.error, d.error_type,
            d.traceback, d.started_at, d.finished_at, d.duration
        FROM joined
        CROSS JOIN LATERAL jsonb_array_elements_text(COALESCE(joined.own->'_steps', p_shared->'_steps'))
            WITH ORDINALITY AS step(name, ordinality)
        CROSS JOIN step_defaults AS d
        WHERE joined.made_id IS NOT NULL
    ),
    event_defaults AS MATERIALIZED (
        SELECT * FROM jsonb_populate_record(
            NULL::{audit},
            p_audit_defaults || CASE WHEN jsonb_typeof(p_shared->'_audit') = 'object'
                THEN p_shared->'_audit' ELSE '{{}}' END)
    ),
    audit AS (
        INSERT INTO {audit} (
            id, created_at, action, source, user_id, actor, ip_address, target_type,
            target_id, target_repr, changes)
        SELECT nextval(p_audit_sequence), statement_timestamp(),
            CASE WHEN e.own ? 'action' THEN e.own->>'action' ELSE d.action END,
            CASE WHEN e.own ? 'source' THEN e.own->>'source' ELSE d.source END,
            CASE WHEN e.own ? 'user_id' THEN (e.own->>'user_id')::integer ELSE d.user_id END,
            CASE WHEN e.own ? 'actor' THEN e.own->>'actor' ELSE d.actor END,
            CASE WHEN e.own ? 'ip_address' THEN (e.own->>'ip_address')::inet ELSE d.ip_address END,
            CASE WHEN e.own ? 'target_type' THEN e.own->>'target_type' ELSE d.target_type END,
            joined.made_id::text,
            CASE WHEN e.own ? 'target_repr' THEN e.own->>'target_repr'
                WHEN p_shared ? '_label_prefix'
                    THEN (p_shared->>'_label_prefix') || joined.made_id::text
                ELSE d.target_repr END,
            CASE WHEN e.own ? 'changes' THEN e.own->'changes' ELSE d.changes END
        FROM joined
        CROSS JOIN LATERAL (
            SELECT CASE WHEN jsonb_typeof(joined.own->'_audit') = 'object'
                THEN joined.own->'_audit' ELSE '{{}}' END AS own
        ) AS e
        CROSS JOIN event_defaults AS d
        WHERE joined.made_id IS NOT NULL
          AND jsonb_typeof(CASE WHEN joined.own ? '_audit' THEN joined.own ELSE p_shared END
            ->'_audit') = 'object'
    ),
    announced AS (
        SELECT pg_notify(
            p_channel,
            (1000 * GREATEST(0, EXTRACT(EPOCH FROM first.due - statement_timestamp())))::bigint::text
        ) AS sent
        FROM (SELECT min(inserted.available_at) AS due FROM inserted HAVING count(*) > 0) AS first
    )
    SELECT joined.made_id IS NOT NULL, held.id,
        (EXTRACT(EPOCH FROM joined.created_at) * 1000000)::bigint,
        (EXTRACT(EPOCH FROM joined.available_at) * 1000000)::bigint
    FROM joined
    LEFT JOIN LATERAL (
        SELECT orbit_run_holding(
            wanted.pipeline_id, wanted.idempotency_key, wanted.unique_key, wanted.scheduled_for
        ) AS id
        FROM jsonb_populate_record(NULL::{run}, p_shared || joined.own) AS wanted
        WHERE joined.made_id IS NULL
        LIMIT 1  -- kept a subquery: pulled up, every run's row was laid out for its filter
    ) AS held ON true
    LEFT JOIN announced ON true
    ORDER BY joined.ordinal;
END
$function$


-- name: create_insert_run
-- The insert_run statement of runs.sql: one run, its steps, its audit event and its NOTIFY,
-- as `orbit_insert_runs` writes a batch of one, with the same pipeline check (and hold),
-- the same answer for a key or slot already held, and the same row back. Why a function
-- of its own: a single `enqueue` is the call a web request makes, and
-- `orbit_insert_runs` spent most of a one-run call laying rows out from jsonb (parsing
-- the models' defaults and reading every column back from text: ~0.3 ms of ~0.9 ms by
-- pgbench on this machine).
-- Here each value arrives typed and each row is one INSERT ... VALUES, whose plan the
-- session keeps. The cost: the columns are named here, so a new column of the run, step
-- or audit tables needs a new version of this function (tests/runs/store/test_functions.py
-- compares each INSERT's columns with its model's and fails until it has one).
CREATE OR REPLACE FUNCTION orbit_insert_run(
    p_id uuid,
    p_pipeline_id bigint,
    p_steps text[],
    p_current_step text,
    p_metadata jsonb,
    p_priority integer,
    p_queue text,
    p_run_after timestamptz,
    p_delay float8,
    p_idempotency_key text,
    p_unique_key text,
    p_scheduled_for timestamptz,
    p_rerun_of uuid,
    p_trace_context jsonb,
    p_action text,
    p_source text,
    p_user_id integer,
    p_actor text,
    p_ip_address inet,
    p_target_type text,
    p_target_repr text,
    p_changes jsonb,
    p_pipeline jsonb,
    p_channel text
) RETURNS TABLE (created boolean, held_by uuid, created_us bigint, available_us bigint)
LANGUAGE plpgsql
AS $function$
DECLARE
    v_created timestamptz;
    v_available timestamptz;
BEGIN
    IF NOT orbit_pipelines_held(p_pipeline, ARRAY[p_pipeline_id]) THEN
        RETURN;
    END IF;
    INSERT INTO {run} AS r (
        id, pipeline_id, status, metadata, priority, queue, available_at, fence,
        worker_id, lease_expires_at, current_step, interruptions, running_time,
        rerun_of_id, started_at, finished_at, error, idempotency_key, unique_key,
        scheduled_for, trace_context, created_at)
    VALUES (
        p_id, p_pipeline_id, 'pending', p_metadata, p_priority, p_queue,
        COALESCE(p_run_after, statement_timestamp() + make_interval(secs => p_delay)), 0,
        NULL, NULL, p_current_step, 0, 0,
        p_rerun_of, NULL, NULL, '', p_idempotency_key, p_unique_key,
        p_scheduled_for, p_trace_context, statement_timestamp())
    ON CONFLICT DO NOTHING
    RETURNING r.created_at, r.available_at INTO v_created, v_available;
    IF NOT FOUND THEN
        RETURN QUERY
        SELECT false,
            orbit_run_holding(p_pipeline_id, p_idempotency_key, p_unique_key, p_scheduled_for),
            NULL::bigint, NULL::bigint;
        RETURN;
    END IF;
    INSERT INTO {step} (
        run_id, name, position, status, attempts, failures, result, error, error_type,
        traceback, started_at, finished_at, duration)
    SELECT p_id, step.name, step.ordinality - 1, 'pending', 0, 0, NULL, '', '',
        '', NULL, NULL, NULL
    FROM unnest(p_steps) WITH ORDINALITY AS step(name, ordinality);
    IF p_action IS NOT NULL THEN
        INSERT INTO {audit} (
            created_at, action, source, user_id, actor, ip_address, target_type,
            target_id, target_repr, changes)
        VALUES (
            statement_timestamp(), p_action, p_source, p_user_id, p_actor, p_ip_address,
            p_target_type, p_id::text, p_target_repr, p_changes);
    END IF;
    PERFORM pg_notify(
        p_channel,
        (1000 * GREATEST(0, EXTRACT(EPOCH FROM v_available - statement_timestamp())))::bigint::text);
    RETURN QUERY
    SELECT true, NULL::uuid,
        (EXTRACT(EPOCH FROM v_created) * 1000000)::bigint,
        (EXTRACT(EPOCH FROM v_available) * 1000000)::bigint;
END
$function$


-- name: drop_insert_run
DROP FUNCTION IF EXISTS orbit_insert_run(
    uuid, bigint, text[], text, jsonb, integer, text, timestamptz, float8, text, text,
    timestamptz, uuid, jsonb, text, text, integer, text, inet, text, text, jsonb, jsonb, text)


-- name: drop_insert_runs
-- The function as every migration created it: with the runs whole (0016), and with what
-- they share sent once (0018).
DROP FUNCTION IF EXISTS
    orbit_insert_runs(jsonb, jsonb, jsonb, jsonb, jsonb, regclass, regclass, text),
    orbit_insert_runs(jsonb, jsonb, jsonb, jsonb, jsonb, jsonb, regclass, regclass, text)


-- name: create_claim
-- The claim statements of runs.sql as they were before they moved here: up to p_limit due
-- runs of enabled, unarchived, unpaused pipelines no flow limit holds, in the queues
-- p_queues (unpaused, and none of p_limited_queues), each run's current step started,
-- returned with their steps. Why a function: the statement was planned on every call,
-- which cost more than running it for the claims of a few runs (pickup, a busy worker's
-- next batch); the function's plans are kept per session.
-- The runs are read per pipeline the claimant may take (an InitPlan lists them once), each
-- through run_pipeline_claimable_idx in claim order up to p_limit, skipping rows another
-- claimer holds; the best p_limit of those are claimed. So a claim never reads the runs
-- it may not take: a backlog held by a flow limit (the document pipeline's Veryfi rate),
-- a paused or disabled pipeline's, a pipeline this worker lacks. Read through the queue's
-- index (run_claimable_idx), each such run cost every claim a skip, and a held backlog
-- of 100,000 runs cost every claim 100,000. The rows read beyond the p_limit claimed are
-- locked only until the claim commits (other claimers skip them meanwhile).
-- The claimant's step names are tested by one index probe per run read (a scalar
-- subquery with LIMIT 1: an EXISTS may be planned as a hash of every unfinished step).
-- `SET enable_seqscan = off`: every row this function reads or writes is found through
-- an index, and the planner must not decide otherwise. A LIMIT over a CTE is estimated at
-- one row, so while the run table looks small (a new deployment before autovacuum's first
-- ANALYZE, a table retention keeps small) the planner put a scan of the whole run table,
-- and another of the step table, inside a nested loop over the claimed runs: one scan
-- per run claimed, 32 of each in a claim of 32, and a fresh database's 1-process drain
-- 11-18% slower (docs/PERFORMANCE.md, "Before and after the store, as `make bench`
-- measures it"). With scans off, the
-- plan's cost carries PostgreSQL's penalty for the scans it cannot avoid (the small
-- pipeline table), which would set off JIT compilation (jit_above_cost) at some 350 ms a
-- call: `SET jit = off` too, as nothing here runs long enough for it to pay.
-- tests/runs/store/test_plans.py counts the scans.
CREATE OR REPLACE FUNCTION orbit_claim(
    p_queues text[],
    p_limit int,
    p_worker bigint,
    p_lease float8,
    p_definitions jsonb,
    p_limited_queues text[]
) RETURNS TABLE (
    run_id uuid, run_fence int, pipeline_name text, pipeline_definition text,
    run_metadata jsonb, started_step text, run_steps json, run_trace_context jsonb
)
LANGUAGE plpgsql
SET enable_seqscan = off
SET jit = off
AS $function$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH candidates AS (
        SELECT d.id
        FROM {pipeline} AS p
        CROSS JOIN LATERAL (
            SELECT r.id, r.priority, r.available_at FROM {run} AS r
            WHERE r.status = 'pending'
              AND r.pipeline_id = p.id
              AND r.queue = ANY(ARRAY(
                  SELECT unnest(p_queues)
                  EXCEPT SELECT unnest(p_limited_queues)
                  EXCEPT SELECT q.queue FROM {queuepause} AS q))
              AND r.available_at <= statement_timestamp()
              AND (p_definitions IS NULL OR NOT COALESCE((
                  SELECT true FROM {step} AS s
                  WHERE s.run_id = r.id AND s.status <> 'succeeded'
                    AND NOT (p_definitions -> p.definition) ? s.name
                  LIMIT 1), false))
            ORDER BY r.priority DESC, r.available_at
            LIMIT p_limit
            FOR UPDATE SKIP LOCKED
        ) AS d
        WHERE p.enabled AND p.paused_at IS NULL AND p.archived_at IS NULL
          AND p.max_concurrency IS NULL AND p.rate_limit = ''
          AND (p_definitions IS NULL OR p_definitions ? p.definition)
        ORDER BY d.priority DESC, d.available_at
        LIMIT p_limit
    ),
    claimed AS (
        UPDATE {run} AS r
        SET status = 'running',
            fence = r.fence + 1,
            worker_id = p_worker,
            lease_expires_at = statement_timestamp() + make_interval(secs => p_lease),
            started_at = COALESCE(r.started_at, statement_timestamp())
        FROM candidates
        -- The ids as an array too, an index condition: joined on the candidates alone,
        -- the planner prices a primary-key lookup per run above a scan of a run table
        -- under some 25,000 rows, and scans it (commit's `fenced` says more).
        WHERE r.id = ANY(ARRAY(SELECT x.id FROM candidates AS x))
          AND r.id = candidates.id
        RETURNING r.id, r.fence, r.pipeline_id, r.metadata, r.current_step, r.trace_context
    ),
    started AS (
        UPDATE {step} AS s
        SET status = 'running', started_at = statement_timestamp()
        FROM claimed AS c
        -- By the step's run through its index, for the reason `claimed` gives.
        WHERE s.run_id = ANY(ARRAY(SELECT x.id FROM claimed AS x))
          AND s.run_id = c.id AND s.name = c.current_step AND s.status <> 'succeeded'
        RETURNING s.run_id, s.name
    )
    SELECT c.id, c.fence::int, p.name::text, p.definition::text, c.metadata::jsonb,
           COALESCE(started.name, '')::text,
           (SELECT json_agg(
                       json_build_array(s.id, s.name, s.status, s.result, s.attempts, s.failures)
                       ORDER BY s.position)
            FROM {step} AS s WHERE s.run_id = c.id),
           c.trace_context::jsonb
    FROM claimed AS c
    JOIN {pipeline} AS p ON p.id = c.pipeline_id
    LEFT JOIN started ON started.run_id = c.id;
END
$function$


-- name: drop_claim
DROP FUNCTION IF EXISTS orbit_claim(text[], int, bigint, float8, jsonb, text[])


-- name: create_commit
-- The commit statement of runs.sql as it was before it moved here (runs.sql `commit`
-- says what it does); the ids of the runs whose fence held. A function for the reason
-- `create_claim` gives: a worker commits a batch every few milliseconds. No scans and
-- no JIT, for the reasons `create_claim` gives (`fenced` hashed the input against a scan
-- of the run table while it looked small).
CREATE OR REPLACE FUNCTION orbit_commit(
    p_outcomes json,
    p_attempt_defaults jsonb,
    p_attempt_sequence regclass
) RETURNS TABLE (run_id uuid)
LANGUAGE plpgsql
SET enable_seqscan = off
SET jit = off
AS $function$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        WITH input AS (
            SELECT * FROM json_to_recordset(p_outcomes) AS i(
                run_id uuid, fence int, status text, keep_worker bool, lease float8, finish bool,
                delay float8, error text, run_time float8, current_step text,
                step_id bigint, step_status text, set_result bool, result text, step_counted bool,
                step_finished bool, step_duration float8, step_failures int, step_error text,
                step_error_type text, step_traceback text, step_clear_start bool,
                number int, outcome text, duration float8, attempt_error text,
                attempt_error_type text, attempt_traceback text, backoff float8, worker_id bigint,
                start_step_id bigint)
        ),
        fenced AS (
            UPDATE {run} AS r
            SET status = i.status,
                worker_id = CASE WHEN i.keep_worker THEN r.worker_id END,
                lease_expires_at = statement_timestamp() + make_interval(secs => i.lease),
                finished_at = CASE WHEN i.finish THEN statement_timestamp() ELSE r.finished_at END,
                available_at = COALESCE(
                    statement_timestamp() + make_interval(secs => i.delay), r.available_at),
                error = COALESCE(i.error, r.error),
                running_time = r.running_time + i.run_time,
                current_step = COALESCE(i.current_step, r.current_step)
            FROM input AS i
            -- Runs are looked up by primary key, the ids as an array (an InitPlan) so that
            -- `r.id = ANY(...)` is an index condition. Joined on the input alone, the
            -- planner takes json_to_recordset's fixed estimate of 100 rows and, while the
            -- run table is under some 25,000 rows or not yet analysed, hashes the input
            -- against a scan of the whole table: 2 ms a commit at 12,000 runs, where the
            -- lookups take 0.1.
            -- `status || ''`: compared bare, the planner may scan the status index
            -- instead, which holds an entry for every run ever running.
            WHERE r.id = ANY(ARRAY(SELECT x.run_id FROM input AS x))
              AND r.id = i.run_id AND r.fence = i.fence AND r.status || '' = 'running'
            RETURNING r.id
        ),
        ok AS (SELECT i.* FROM input AS i JOIN fenced ON fenced.id = i.run_id),
        attempts AS (
            INSERT INTO {attempt}
            SELECT made.*
            FROM ok
            CROSS JOIN LATERAL jsonb_populate_record(
                NULL::{attempt},
                p_attempt_defaults || jsonb_build_object(
                    'id', nextval(p_attempt_sequence),
                    'step_id', ok.step_id,
                    'run_id', ok.run_id,
                    'number', ok.number,
                    'outcome', ok.outcome,
                    'error', ok.attempt_error,
                    'error_type', ok.attempt_error_type,
                    'traceback', ok.attempt_traceback,
                    'started_at', statement_timestamp() - make_interval(secs => ok.duration),
                    'finished_at', statement_timestamp(),
                    'duration', ok.duration,
                    'backoff_delay', ok.backoff,
                    'worker_id', ok.worker_id)
            ) AS made
            WHERE ok.number IS NOT NULL
        ),
        stepped AS (
            UPDATE {step} AS s
            SET status = ok.step_status,
                result = CASE WHEN ok.set_result THEN ok.result::jsonb ELSE s.result END,
                attempts = s.attempts + CASE WHEN ok.step_counted THEN 1 ELSE 0 END,
                finished_at = CASE WHEN ok.step_finished THEN statement_timestamp() ELSE s.finished_at END,
                duration = COALESCE(ok.step_duration, s.duration),
                failures = COALESCE(ok.step_failures, s.failures),
                error = COALESCE(ok.step_error, s.error),
                error_type = COALESCE(ok.step_error_type, s.error_type),
                traceback = COALESCE(ok.step_traceback, s.traceback),
                started_at = CASE WHEN ok.step_clear_start THEN NULL ELSE s.started_at END
            FROM ok
            WHERE s.id = ok.step_id AND ok.step_status IS NOT NULL
        ),
        started AS (
            UPDATE {step} AS s
            SET status = 'running', started_at = statement_timestamp()
            FROM ok
            WHERE s.id = ok.start_step_id
        )
        SELECT fenced.id FROM fenced;
END
$function$


-- name: drop_commit
DROP FUNCTION IF EXISTS orbit_commit(json, jsonb, regclass)


-- name: create_due_under_limits
-- The due runs each flow limit with room holds (portable.py `_due_under_limits`), up to
-- its bound, in claim order within each: per limited pipeline p_pipelines (with
-- p_pipeline_bounds) and per limited queue p_limited_queues (its runs of pipelines no
-- limit holds, with p_queue_bounds), on the claimant's queues p_queues, none of them
-- paused, of the pipelines it defines (p_definitions: definition -> step names, or NULL
-- for all). Each limit is read by an index in claim order (run_pipeline_claimable_idx,
-- run_claimable_idx) and stops at its bound. So nothing over the runs read may turn into
-- a join or a hash, which read a held backlog (or the step table) in full and sort:
-- - the unpaused queues and the unlimited pipelines are arrays computed once (InitPlans),
--   each run tested against them;
-- - the claimant's step names are tested by one index probe per run read
--   (step_unique_name), a scalar subquery with LIMIT 1: an EXISTS here may be planned as
--   a hash of every unfinished step in the table.
-- No row locks: the limits' advisory lock, held by the caller, serialises every claimer of
-- these runs, and the claim that follows takes a run only while it is still pending.
-- A function for the reason `create_claim` gives: a claim under limits planned this
-- statement on every call, in more time than it took to run.
CREATE OR REPLACE FUNCTION orbit_due_under_limits(
    p_pipelines bigint[],
    p_pipeline_bounds int[],
    p_limited_queues text[],
    p_queue_bounds int[],
    p_queues text[],
    p_definitions jsonb
) RETURNS TABLE (
    run_id uuid, run_pipeline_id bigint, run_queue text, run_priority int,
    run_available_at timestamptz
)
LANGUAGE plpgsql STABLE
AS $function$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT d.id, d.pipeline_id, d.queue::text, d.priority, d.available_at
    FROM unnest(p_pipelines, p_pipeline_bounds) AS l(pipeline_id, bound)
    JOIN {pipeline} AS p ON p.id = l.pipeline_id
    CROSS JOIN LATERAL (
        SELECT r.id, r.pipeline_id, r.queue, r.priority, r.available_at FROM {run} AS r
        WHERE r.status = 'pending'
          AND r.pipeline_id = p.id
          AND r.queue = ANY(ARRAY(
              SELECT unnest(p_queues) EXCEPT SELECT q.queue FROM {queuepause} AS q))
          AND r.available_at <= statement_timestamp()
          AND (p_definitions IS NULL OR NOT COALESCE((
              SELECT true FROM {step} AS s
              WHERE s.run_id = r.id AND s.status <> 'succeeded'
                AND NOT (p_definitions -> p.definition) ? s.name
              LIMIT 1), false))
        ORDER BY r.priority DESC, r.available_at
        LIMIT l.bound
    ) AS d
    WHERE p.enabled AND p.paused_at IS NULL AND p.archived_at IS NULL
      AND (p_definitions IS NULL OR p_definitions ? p.definition)
    UNION ALL
    SELECT d.id, d.pipeline_id, d.queue::text, d.priority, d.available_at
    FROM unnest(p_limited_queues, p_queue_bounds) AS l(queue, bound)
    CROSS JOIN LATERAL (
        SELECT r.id, r.pipeline_id, r.queue, r.priority, r.available_at FROM {run} AS r
        WHERE r.status = 'pending'
          AND r.queue = l.queue
          AND l.queue = ANY(p_queues)
          AND NOT EXISTS (SELECT 1 FROM {queuepause} AS q WHERE q.queue = l.queue)
          AND r.available_at <= statement_timestamp()
          AND r.pipeline_id = ANY(ARRAY(
              SELECT p.id FROM {pipeline} AS p
              WHERE p.enabled AND p.paused_at IS NULL AND p.archived_at IS NULL
                AND p.max_concurrency IS NULL AND p.rate_limit = ''
                AND (p_definitions IS NULL OR p_definitions ? p.definition)))
          AND (p_definitions IS NULL OR NOT COALESCE((
              SELECT true FROM {step} AS s JOIN {pipeline} AS p ON p.id = r.pipeline_id
              WHERE s.run_id = r.id AND s.status <> 'succeeded'
                AND NOT (p_definitions -> p.definition) ? s.name
              LIMIT 1), false))
        ORDER BY r.priority DESC, r.available_at
        LIMIT l.bound
    ) AS d;
END
$function$


-- name: drop_due_under_limits
DROP FUNCTION IF EXISTS orbit_due_under_limits(bigint[], int[], text[], int[], text[], jsonb)


-- name: create_refuse_orphans
-- A row other rows point to is never deleted while they do: what a foreign-key constraint
-- did for a DELETE, kept for the two that migration 0026 dropped (a run's pipeline, a
-- step's run), whose checks on insert ran once per row (the insert's half is
-- `orbit_pipelines_held`'s, once a batch; a step is only ever inserted with its run).
-- One trigger on each parent table, firing once per DELETE statement over the rows it
-- deleted (the transition table `gone`), with four arguments: the child table, its column
-- holding the parent's id, the parent's column that names it in the refusal, and the
-- refusal, that name in place of its %s. Raises foreign_key_violation, as the constraint
-- did. A pipeline deleted while a batch of its runs is being inserted waits for the
-- batch's lock on its row; by the time this runs, the batch has committed and its runs
-- are seen here (each statement of a function takes a new snapshot), or it rolled back.
-- Deleting a run deletes its steps first (Django's cascade; the pruner's statement,
-- runs.sql `prune_runs`), and an attempt or a log line keeps its foreign keys.
CREATE OR REPLACE FUNCTION orbit_refuse_orphans() RETURNS trigger
LANGUAGE plpgsql
AS $function$
DECLARE
    held text;
BEGIN
    EXECUTE format(
        'SELECT gone.%I::text FROM gone '
        'WHERE EXISTS (SELECT FROM %s AS child WHERE child.%I = gone.id) LIMIT 1',
        TG_ARGV[2], TG_ARGV[0], TG_ARGV[1])
    INTO held;
    IF held IS NOT NULL THEN
        RAISE EXCEPTION USING
            MESSAGE = format(TG_ARGV[3], held),
            ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$function$;
DROP TRIGGER IF EXISTS orbit_pipelines_keep_their_runs ON {pipeline};
CREATE TRIGGER orbit_pipelines_keep_their_runs
    AFTER DELETE ON {pipeline}
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION orbit_refuse_orphans(
        '{run}', 'pipeline_id', 'name',
        'pipeline %s has runs: disable it instead of deleting it');
DROP TRIGGER IF EXISTS orbit_runs_keep_their_steps ON {run};
CREATE TRIGGER orbit_runs_keep_their_steps
    AFTER DELETE ON {run}
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION orbit_refuse_orphans(
        '{step}', 'run_id', 'id', 'run %s still has steps: delete them with it')


-- name: drop_refuse_orphans
DROP TRIGGER IF EXISTS orbit_pipelines_keep_their_runs ON {pipeline};
DROP TRIGGER IF EXISTS orbit_runs_keep_their_steps ON {run};
DROP FUNCTION IF EXISTS orbit_refuse_orphans()

-- name: create_attempts_kept
-- An attempt is never left without its run or its step: what the two foreign-key
-- constraints did for a DELETE, kept for the two that migration 0028 dropped, whose checks
-- ran once per attempt inserted (a query each, at COMMIT: 11 us of a worker's commit of
-- 117 us a run, `make bench-commit`). The insert's half is the commit's own: it inserts an
-- attempt only for a run its statement holds fenced (so the run is there, locked), and
-- the step is one of that run's, read under the claim; steps are only deleted with their
-- run. One trigger on each parent table, as `create_refuse_orphans` says.
-- Deleting a run deletes its attempts first (Django's cascade; the pruner's statement).
DROP TRIGGER IF EXISTS orbit_runs_keep_their_attempts ON {run};
CREATE TRIGGER orbit_runs_keep_their_attempts
    AFTER DELETE ON {run}
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION orbit_refuse_orphans(
        '{attempt}', 'run_id', 'id', 'run %s still has attempts: delete them with it');
DROP TRIGGER IF EXISTS orbit_steps_keep_their_attempts ON {step};
CREATE TRIGGER orbit_steps_keep_their_attempts
    AFTER DELETE ON {step}
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION orbit_refuse_orphans(
        '{attempt}', 'step_id', 'id', 'step %s still has attempts: delete them with it')


-- name: drop_attempts_kept
DROP TRIGGER IF EXISTS orbit_runs_keep_their_attempts ON {run};
DROP TRIGGER IF EXISTS orbit_steps_keep_their_attempts ON {step}
