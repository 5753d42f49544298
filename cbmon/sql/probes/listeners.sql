-- Sessions of this database by application_name. A session's state and last statement are
-- shown to its own role, a superuser and pg_read_all_stats only; otherwise they are NULL and
-- a session that exists counts as listening.
SELECT application_name,
       sum(CASE WHEN state IS NULL OR query IS NULL THEN 1
                WHEN state <> 'idle in transaction' AND query ILIKE 'listen%%' THEN 1
                ELSE 0 END) AS listening
FROM pg_stat_activity
WHERE datname = current_database() AND application_name = ANY (%(names)s)
GROUP BY application_name
