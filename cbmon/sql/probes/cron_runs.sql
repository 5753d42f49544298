-- Finished runs of pg_cron's jobs after run %(after)s: per job and result, how many, and how
-- many lie below the first run still going (settled: counted once, for good).
WITH fresh AS (
    SELECT jobid, runid, status, start_time, end_time
    FROM cron.job_run_details
    WHERE runid > %(after)s
), open_run AS (
    SELECT min(runid) AS runid FROM fresh WHERE status NOT IN ('succeeded', 'failed')
)
SELECT f.jobid::bigint AS job_id,
       f.status,
       count(*) AS runs,
       sum(CASE WHEN o.runid IS NULL OR f.runid < o.runid THEN 1 ELSE 0 END) AS settled,
       extract(epoch FROM max(f.end_time))::float8 AS last_end,
       extract(epoch FROM min(f.start_time))::float8 AS first_start,
       coalesce(min(o.runid) - 1, (SELECT max(runid) FROM fresh)) AS settled_to
FROM fresh AS f CROSS JOIN open_run AS o
WHERE f.status IN ('succeeded', 'failed')
GROUP BY f.jobid, f.status
