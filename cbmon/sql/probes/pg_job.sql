-- openGauss/GaussDB jobs: PG_JOB keeps no run history, only the last runs and the count of
-- failures in a row; 'd' after 16 of them. Its dates have no time zone: they are turned into
-- epoch seconds through the server's local time.
SELECT job_id::bigint AS job_id,
       coalesce(job_name, job_id::text) AS name,
       "interval" AS schedule,
       job_status <> 'd' AS active,
       failure_count::bigint AS failures,
       extract(epoch FROM now())::float8
           - extract(epoch FROM localtimestamp - last_suc_date)::float8 AS last_success,
       extract(epoch FROM now())::float8
           - extract(epoch FROM localtimestamp - start_date)::float8 AS first_start
FROM pg_job
WHERE dbname = current_database()
ORDER BY job_id
