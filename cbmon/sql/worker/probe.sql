-- The tables the worker needs exist and it may read them.
SELECT 1 FROM {queue}, {schema}.callback_logs, {schema}.callback_errors LIMIT 0
