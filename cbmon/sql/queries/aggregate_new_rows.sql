-- Aggregates of rows a poll has not counted yet (the new id range, or the open gaps), per key
-- and target. count(CASE ...) rather than FILTER, which openGauss lacks; as fast here.
SELECT {key} AS key, {target} AS target, count(*) AS rows_read, {aggregates}
FROM {rows}
GROUP BY 1, 2
