-- The PostgreSQL store's webhook statements (runs/store/postgres.py), named as in runs.sql.
-- {delivery} is the webhook deliveries' table; every other value is a bound parameter.


-- name: claim_deliveries
-- Due deliveries (pending, due, not under a live claim: a claim whose worker died expires)
-- under a new claim token. SKIP LOCKED: workers claiming at once each take other rows,
-- none waits. One short statement: the sending happens after it, outside any transaction.
WITH due AS (
    SELECT id
    FROM {delivery}
    WHERE status = 'pending'
      AND next_attempt_at <= statement_timestamp()
      AND (claimed_until IS NULL OR claimed_until < statement_timestamp())
    ORDER BY next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE {delivery} AS d
SET claim = %(claim)s,
    claimed_until = statement_timestamp() + make_interval(secs => %(lease)s)
FROM due
WHERE d.id = due.id
RETURNING d.id, d.endpoint_id, d.event, d.run_id, d.payload, d.attempts
