-- The token buckets as the limiter's next take would find them: refilled to now.
SELECT bucket_id,
       capacity,
       dropped,
       CASE WHEN last_refill IS NULL THEN tokens::float8
            ELSE least(capacity::float8, tokens + floor(
                extract(epoch FROM clock_timestamp() - last_refill) * refill_per_second))
       END AS tokens
FROM {schema}.callback_limits
ORDER BY bucket_id
