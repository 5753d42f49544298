-- Whether an event type appears anywhere in the log or error table, at any time.
SELECT EXISTS (
           SELECT 1 FROM {logs}
           WHERE COALESCE(NULLIF({logs_event_type}::text, ''), 'unknown') = %(event_type)s
       )
    OR EXISTS (
           SELECT 1 FROM {errors}
           WHERE COALESCE(NULLIF({errors_event_type}::text, ''), 'unknown') = %(event_type)s
       ) AS seen
