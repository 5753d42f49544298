-- Which of the mechanism's optional sources exist here, and whether this role may read them.
-- No to_regclass (openGauss): the catalogs are read instead.
SELECT
    EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'pg_notification_queue_usage') AS notify_queue,
    EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') AS pg_cron,
    EXISTS (SELECT 1 FROM pg_class WHERE relname = 'pg_job' AND pg_table_is_visible(oid))
        AS pg_job,
    EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %(schema)s AND c.relname = 'callback_router') AS router,
    EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %(schema)s AND c.relname = 'callback_limits') AS limits,
    EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %(schema)s)
        AND has_schema_privilege(%(schema)s, 'USAGE') AS schema_usage,
    current_setting('track_functions') AS track_functions,
    current_user AS role,
    extract(epoch FROM now())::float8 AS at
