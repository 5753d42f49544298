-- Try a row again after %(delay)s seconds, the lease handed back. Only the holder of the
-- current lease may.
UPDATE {queue}
SET next_attempt_at = now() + %(delay)s * interval '1 second', locked_until = NULL,
    last_error = %(error)s
WHERE id = %(id)s AND attempts = %(attempt)s AND processed_at IS NULL
