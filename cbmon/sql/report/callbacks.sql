-- Callbacks, not only attempts, per event type and overall over the attempts in [from, to),
-- optionally per time bucket too (as attempts.sql). {frame} is the attempt log's rows of the
-- period with serve's lifecycle columns worked out once per row (cbmon.ingest.lifecycle.Frame:
-- cbmon_first true at a callback's first successful attempt, false at a later one, NULL when
-- the attempt failed; cbmon_dead at its last allowed attempt failing; cbmon_queued the seconds
-- from queued to a first or successful attempt), and {aggregates} serve's own aggregates of
-- them, so the report and serve count the same. On top: the callbacks attempted, the first
-- attempts and how they went, and exact queue wait and end-to-end percentiles in milliseconds.
-- A failed first attempt is recovered when a later attempt of the same callback succeeded
-- (one probe of the index on the log's queue_id per failed first attempt).
-- percentile_cont takes one fraction per call because openGauss accepts no array; ordered-set
-- aggregates skip NULLs, so each reads only the rows its CASE keeps.
SELECT {bucket_column}
       cbmon_event_type                                               AS event_type,
       GROUPING(cbmon_event_type) = 1                                 AS is_overall,
       {aggregates},
       count(DISTINCT {queue_id})                                     AS cb_callbacks,
       count(CASE WHEN {attempt} = 1 AND {queue_id} IS NOT NULL THEN 1 END) AS cb_first_attempts,
       count(CASE WHEN {attempt} = 1 AND cbmon_first THEN 1 END)      AS cb_first_try,
       count(CASE WHEN cbmon_first_failed THEN 1 END)                 AS cb_first_failed,
       count(CASE WHEN cbmon_recovered THEN 1 END)                    AS cb_recovered,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY cbmon_wait_ms)     AS wait_p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY cbmon_wait_ms)    AS wait_p95_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY cbmon_wait_ms)    AS wait_p99_ms,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY cbmon_end_ms)      AS end_p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY cbmon_end_ms)     AS end_p95_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY cbmon_end_ms)     AS end_p99_ms,
       max(cbmon_end_ms)                                              AS end_max_ms
FROM (
    SELECT {bucket}
           COALESCE(NULLIF({event_type}::text, ''), 'unknown')            AS cbmon_event_type,
           CASE WHEN {attempt} = 1 AND cbmon_queued >= 0
                THEN cbmon_queued::float8 * 1000.0 END                            AS cbmon_wait_ms,
           CASE WHEN cbmon_first AND cbmon_queued >= 0
                THEN cbmon_queued::float8 * 1000.0 END                            AS cbmon_end_ms,
           {first_failed}                                                 AS cbmon_first_failed,
           CASE WHEN {first_failed} THEN EXISTS (
               SELECT 1 FROM {logs} AS later
               WHERE {later_queue_id} = {batch_queue_id} AND {later_id} > {batch_id}
                 AND {later_succeeded}
           ) END                                                          AS cbmon_recovered,
           batch.*
    FROM {frame}
    OFFSET 0
) AS callbacks
GROUP BY GROUPING SETS ({grouping})
