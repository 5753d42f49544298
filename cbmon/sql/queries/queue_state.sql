-- Backlog and the oldest waiting item, from the partial index on waiting rows alone; and the
-- moment: the database's clock, and whether the server is a hot standby.
SELECT count(*),
       extract(epoch FROM min({created_at})),
       extract(epoch FROM now()),
       pg_is_in_recovery()
FROM {table}
WHERE {processed_at} IS NULL
