-- Backlog and the oldest waiting item, from the partial index on waiting rows alone.
SELECT count(*),
       extract(epoch FROM min({created_at})),
       extract(epoch FROM now())
FROM {table}
WHERE {processed_at} IS NULL
