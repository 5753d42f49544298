-- Calls and time of the mechanism's functions (track_functions must be pl or all).
SELECT schemaname || '.' || funcname AS function, calls, total_time / 1000.0 AS seconds
FROM pg_stat_user_functions
WHERE schemaname = %(schema)s
ORDER BY 1
