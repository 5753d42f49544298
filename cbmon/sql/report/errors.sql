-- Rows of the error table in [from, to), per event type and overall.
SELECT event_type, GROUPING(event_type) = 1 AS is_overall, count(*) AS errors
FROM (
    SELECT COALESCE(NULLIF({event_type}::text, ''), 'unknown') AS event_type
    FROM {errors}
    WHERE {created_at} >= %(from)s AND {created_at} < %(to)s
) AS recorded
WHERE %(event_types)s::text[] IS NULL OR event_type = ANY (%(event_types)s::text[])
GROUP BY GROUPING SETS ((event_type), ())
