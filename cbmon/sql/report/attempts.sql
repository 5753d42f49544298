-- Per event type and overall (the empty grouping set) over the attempts in [from, to),
-- optionally per time bucket too ({bucket}: the start of the step the row falls in, a
-- multiple of the step since the Unix epoch, so hours and days start on UTC boundaries).
-- One scan and one sort: the overall row comes from the same pass as the per-type rows.
-- A duration is observed only when it is a number from 0 to max_execution_time. PostgreSQL
-- sorts NaN above every number, so the upper bound also drops NaN and infinity. {duration}
-- is the column as float8, a numeric too large for float8 read as NaN (cbmon.catalog).
-- percentile_cont takes one fraction per call because openGauss accepts no array; PostgreSQL
-- shares one sort between calls with the same ORDER BY.
-- A subquery rather than a CTE: older planners (and openGauss) materialise every CTE.
SELECT {bucket_column}
       event_type,
       GROUPING(event_type) = 1                              AS is_overall,
       count(*)                                              AS calls,
       count(*) - count(CASE WHEN succeeded THEN 1 END)      AS failures,
       count(ms)                                             AS observed,
       sum(ms)                                               AS sum_ms,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)       AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)      AS p95_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)      AS p99_ms,
       max(ms)                                               AS max_ms,
       count(CASE WHEN ms > %(slow_ms)s THEN 1 END)          AS slow
FROM (
    SELECT {bucket}
           COALESCE(NULLIF({event_type}::text, ''), 'unknown')            AS event_type,
           COALESCE({status}::text = ANY (%(success)s::text[]), false)    AS succeeded,
           CASE WHEN {duration} >= 0
                 AND {duration} <= %(max_value)s::float8
                THEN {duration} * %(factor)s::float8
           END                                                            AS ms
    FROM {logs}
    WHERE {created_at} >= %(from)s AND {created_at} < %(to)s
) AS attempts
WHERE %(event_types)s::text[] IS NULL OR event_type = ANY (%(event_types)s::text[])
GROUP BY GROUPING SETS ({grouping})
