SELECT pg_notification_queue_usage()::float8 AS usage
