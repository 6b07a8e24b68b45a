-- PL/pgSQL functions of the PostgreSQL store, each created by a migration from the
-- statement named here (runs/migrations/0015_insert_runs_function.py), with the same
-- {run}, {step}, {pipeline}, {audit} table names as runs.sql filled in, and called by one
-- named statement of runs.sql.
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


-- name: create_insert_runs
-- The insert_runs statement of runs.sql, as it was before it moved here: runs, their
-- steps, their audit events and one NOTIFY. With `p_pipeline` (PipelineCheck), nothing
-- is written unless that row is enabled and still has the values the caller laid the runs
-- out with (it may have read them from a cached copy): no row at all comes back then, and
-- the caller reads the pipeline again. FOR SHARE: a disable in progress is waited for and
-- then seen, and one that starts meanwhile waits for these runs to commit.
-- A run whose idempotency key, unique key (held by a pending or running run) or schedule
-- slot is taken is skipped and answered with the id of the run holding it, when this
-- statement can see that run (one committed meanwhile is looked up by the caller).
-- Rows are built by jsonb_populate_record in a LATERAL join, once per row (written as
-- `SELECT (jsonb_populate_record(...)).*` it runs once per column, nextval() with it).
-- The defaults come from the models on every call (runs/store/rows.py), so a new column
-- is written with its model's default without a new version of this function.
CREATE OR REPLACE FUNCTION orbit_insert_runs(
    p_runs jsonb,
    p_pipeline jsonb,
    p_run_defaults jsonb,
    p_step_defaults jsonb,
    p_audit_defaults jsonb,
    p_step_sequence regclass,
    p_audit_sequence regclass,
    p_channel text
) RETURNS TABLE (
    run_id uuid, created boolean, run_created_at timestamptz, run_available_at timestamptz,
    held_by uuid
)
LANGUAGE plpgsql
AS $function$
BEGIN
    RETURN QUERY
    WITH pipeline AS (
        SELECT p.id FROM {pipeline} AS p
        WHERE p.id = (p_pipeline->>'id')::bigint
          AND p.enabled
          AND p.archived_at IS NULL
          AND p.name = p_pipeline->>'name'
          AND p.definition = p_pipeline->>'definition'
          AND p.default_metadata = p_pipeline->'default_metadata'
        FOR SHARE
    ),
    input AS (
        SELECT x.ordinality AS ordinal, x.value AS run, (x.value->>'id')::uuid AS id
        FROM jsonb_array_elements(p_runs) WITH ORDINALITY AS x(value, ordinality)
        WHERE p_pipeline IS NULL OR EXISTS (SELECT FROM pipeline)
    ),
    inserted AS (
        INSERT INTO {run}
        SELECT made.*
        FROM input
        CROSS JOIN LATERAL jsonb_populate_record(
            NULL::{run},
            p_run_defaults || input.run || jsonb_build_object(
                'created_at', statement_timestamp(),
                'available_at', COALESCE(
                    (input.run->>'_run_after')::timestamptz,
                    statement_timestamp() + make_interval(secs => (input.run->>'_delay')::float8)))
        ) AS made
        ORDER BY input.ordinal
        ON CONFLICT DO NOTHING
        RETURNING {run}.id, {run}.created_at, {run}.available_at
    ),
    steps AS (
        INSERT INTO {step}
        SELECT made.*
        FROM inserted
        JOIN input ON input.id = inserted.id
        CROSS JOIN LATERAL jsonb_array_elements_text(input.run->'_steps')
            WITH ORDINALITY AS step(name, ordinality)
        CROSS JOIN LATERAL jsonb_populate_record(
            NULL::{step},
            p_step_defaults || jsonb_build_object(
                'id', nextval(p_step_sequence),
                'run_id', inserted.id,
                'name', step.name,
                'position', step.ordinality - 1)
        ) AS made
    ),
    audit AS (
        INSERT INTO {audit}
        SELECT made.*
        FROM inserted
        JOIN input ON input.id = inserted.id
        CROSS JOIN LATERAL jsonb_populate_record(
            NULL::{audit},
            p_audit_defaults || (input.run->'_audit') || jsonb_build_object(
                'id', nextval(p_audit_sequence),
                'created_at', statement_timestamp(),
                'target_id', inserted.id::text)
        ) AS made
        WHERE jsonb_typeof(input.run->'_audit') = 'object'
    ),
    announced AS (
        SELECT pg_notify(
            p_channel,
            (1000 * GREATEST(0, EXTRACT(EPOCH FROM first.due - statement_timestamp())))::bigint::text
        ) AS sent
        FROM (SELECT min(inserted.available_at) AS due FROM inserted HAVING count(*) > 0) AS first
    )
    SELECT input.id, inserted.id IS NOT NULL, inserted.created_at, inserted.available_at, held.id
    FROM input
    LEFT JOIN inserted ON inserted.id = input.id
    LEFT JOIN LATERAL (
        SELECT r.id FROM {run} AS r
        WHERE inserted.id IS NULL
          AND r.pipeline_id = (input.run->>'pipeline_id')::bigint
          AND (r.idempotency_key = input.run->>'idempotency_key'
               OR (r.unique_key = input.run->>'unique_key' AND r.status IN ('pending', 'running'))
               OR r.scheduled_for = (input.run->>'scheduled_for')::timestamptz)
        LIMIT 1
    ) AS held ON true
    LEFT JOIN announced ON true
    ORDER BY input.ordinal;
END
$function$


-- name: drop_insert_runs
DROP FUNCTION IF EXISTS orbit_insert_runs(jsonb, jsonb, jsonb, jsonb, jsonb, regclass, regclass, text)
