-- Backlog and the oldest waiting item, from the partial index on waiting rows alone; the
-- moment: the database's clock, and whether the server is a hot standby; and the waiting rows
-- by state (NULL where the queue has no lease or retry columns), dead rows from their own
-- partial index.
SELECT count(*),
       extract(epoch FROM min({created_at})),
       extract(epoch FROM now()),
       pg_is_in_recovery(),
       {states}
FROM {table}
WHERE {processed_at} IS NULL
