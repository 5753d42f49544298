-- Hand back a claim never attempted (the worker is stopping): the attempt does not count.
UPDATE {queue}
SET attempts = attempts - 1, next_attempt_at = NULL, locked_until = NULL
WHERE id = %(id)s AND attempts = %(attempt)s AND processed_at IS NULL
