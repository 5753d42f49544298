-- Claim up to %(limit)s due rows for one attempt each: a lease (locked_until) keeps other
-- workers off them until the attempt is settled; a lease that ran out (its worker went away:
-- the row is stuck) is claimed again. SKIP LOCKED lets workers claim side by side.
-- interval arithmetic rather than make_interval, which openGauss lacks.
WITH due AS (
    SELECT id FROM {queue}
    WHERE processed_at IS NULL
      AND (next_attempt_at IS NULL OR next_attempt_at <= now())
      AND (locked_until IS NULL OR locked_until <= now())
    ORDER BY created_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE {queue} AS q
SET attempts = q.attempts + 1,
    next_attempt_at = NULL,
    locked_until = now() + %(lease)s * interval '1 second'
FROM due WHERE q.id = due.id
RETURNING q.id AS queue_id, q.event_type, q.payload, q.attempts AS attempt, q.created_at
