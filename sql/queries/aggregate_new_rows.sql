-- Aggregates of the rows a poll has not counted yet: the new id range and the open gaps.
-- {columns} are computed once per row; {aggregates} are the source's own, over them.
-- count(CASE ...) rather than FILTER, which openGauss lacks.
SELECT k, count(*) AS rows_read, {in_range} AS in_range, {aggregates}
FROM (
    SELECT {key} AS k, {id} AS id{columns}
    FROM {table}
    WHERE {where}
) AS r
GROUP BY k
