-- pg_cron's jobs (PostgreSQL). Row-level security shows a role only its own unless it is a
-- superuser or has BYPASSRLS.
SELECT jobid::bigint AS job_id, coalesce(jobname, jobid::text) AS name, schedule, active
FROM cron.job
ORDER BY jobid
