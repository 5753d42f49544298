-- Aggregates of the rows a poll has not counted yet: the new id range and the open gaps.
-- count(CASE ...) rather than FILTER, which openGauss lacks; as fast here.
SELECT {key} AS key, count(*) AS rows_read, {in_range} AS in_range, {aggregates}
FROM {table}
WHERE {where}
GROUP BY 1
