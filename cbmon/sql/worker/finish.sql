-- Settle a row for good: delivered, or dead (its last allowed attempt failed). Only the
-- holder of the current lease may (attempts still ours).
UPDATE {queue}
SET processed_at = now(), next_attempt_at = NULL, locked_until = NULL,
    outcome = %(outcome)s, last_error = coalesce(%(error)s, last_error)
WHERE id = %(id)s AND attempts = %(attempt)s AND processed_at IS NULL
