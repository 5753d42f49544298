-- Rows of the error table per time bucket, per event type and overall. A bucket starts at a
-- multiple of the step since the Unix epoch (UTC midnight for days), as in attempts.sql.
SELECT bucket, event_type, GROUPING(event_type) = 1 AS is_overall, count(*) AS errors
FROM (
    SELECT {bucket_start}                                      AS bucket,
           COALESCE(NULLIF({event_type}::text, ''), 'unknown') AS event_type
    FROM {errors}
    WHERE {created_at} >= %(from)s AND {created_at} < %(to)s
) AS recorded
WHERE %(event_types)s::text[] IS NULL OR event_type = ANY (%(event_types)s::text[])
GROUP BY GROUPING SETS ((bucket, event_type), (bucket))
