-- Aggregates of the rows a poll has not counted yet: the new id range and the open gaps.
-- {aggregates} are the source's own expressions; CASE sums instead of FILTER for openGauss.
SELECT {key} AS key,
       count(*) AS rows_read,
       sum(CASE WHEN {id} > %(after)s AND {id} <= %(upto)s THEN 1 ELSE 0 END) AS in_range,
       {aggregates}
FROM {table}
WHERE {where}
GROUP BY 1
