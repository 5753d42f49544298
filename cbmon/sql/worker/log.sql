-- One attempt, for cbmon to read.
INSERT INTO {schema}.callback_logs
    (event_type, status, execution_time, queue_id, attempt, http_status, target)
VALUES (%s, %s, %s, %s, %s, %s, %s)
