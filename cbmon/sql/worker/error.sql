-- One failure, for cbmon to read.
INSERT INTO {schema}.callback_errors (event_type, error_message, queue_id, attempt)
VALUES (%s, %s, %s, %s)
