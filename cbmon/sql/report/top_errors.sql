-- The most frequent error messages in [from, to); ties broken by message for a stable order.
SELECT message, count(*) AS occurrences, max(created_at) AS last_seen,
       count(DISTINCT event_type) AS event_types
FROM (
    SELECT COALESCE({error_message}::text, '')                 AS message,
           {created_at}                                        AS created_at,
           COALESCE(NULLIF({event_type}::text, ''), 'unknown') AS event_type
    FROM {errors}
    WHERE {created_at} >= %(from)s AND {created_at} < %(to)s
) AS recorded
WHERE %(event_types)s::text[] IS NULL OR event_type = ANY (%(event_types)s::text[])
GROUP BY message
ORDER BY occurrences DESC, message
LIMIT %(limit)s
