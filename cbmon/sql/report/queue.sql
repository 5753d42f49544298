-- The queue now: waiting rows and the age of the oldest, by the database's clock.
-- A clock skewed into the future gives age 0, not a negative age.
-- Both come from the partial index on waiting rows when the reference schema is used.
SELECT count(*) AS backlog,
       GREATEST(COALESCE(EXTRACT(EPOCH FROM now() - min({created_at})), 0), 0)::float8
           AS oldest_age_seconds
FROM {queue}
WHERE {processed_at} IS NULL
