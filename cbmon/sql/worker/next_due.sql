-- Seconds until the next row waiting on a retry is due, if any.
SELECT extract(epoch FROM min(next_attempt_at) - now()) FROM {queue}
WHERE processed_at IS NULL AND next_attempt_at > now()
