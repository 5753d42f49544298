-- The ids that have appeared in the open gaps, as ranges of consecutive ids (an id minus its
-- rank is the same along a run). Reads the id index over the gaps only.
SELECT min(id) AS low, max(id) AS high
FROM (
    SELECT {id}::bigint AS id, {id}::bigint - row_number() OVER (ORDER BY {id}) AS run
    FROM {table}
    WHERE {where}
) AS present
GROUP BY run
ORDER BY 1
