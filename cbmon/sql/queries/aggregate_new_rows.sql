-- Aggregates of rows a poll has not counted yet (the new id range, or the open gaps), per key.
-- count(CASE ...) rather than FILTER, which openGauss lacks; as fast here.
SELECT {key} AS key, count(*) AS rows_read, {aggregates}
FROM {table}
WHERE {where}
GROUP BY 1
