-- The routing table: each route, whether it is enabled, whether its handler function exists in
-- the router's schema, and its retry policy's max_retries.
SELECT r.event_type,
       {enabled} AS enabled,
       r.handler_function IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = %(schema)s AND p.proname = r.handler_function
       ) AS missing_handler,
       r.retry_policy ->> 'max_retries' AS max_retries
FROM {schema}.callback_router AS r
ORDER BY r.event_type
