-- Seconds until the next row waiting on a retry, or on a lease that runs out, is due.
SELECT extract(epoch FROM min(least(coalesce(next_attempt_at, locked_until),
                                    coalesce(locked_until, next_attempt_at))) - now())
FROM {queue}
WHERE processed_at IS NULL AND (next_attempt_at > now() OR locked_until > now())
