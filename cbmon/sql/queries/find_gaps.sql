-- Ranges of ids in (after, upto] that no visible row holds: ids taken by transactions that
-- have not committed yet (or never will). Reads the id index only over the new range.
SELECT prev + 1 AS low, id - 1 AS high
FROM (
    SELECT {id}::bigint AS id,
           lag({id}::bigint, 1, %(after)s::bigint) OVER (ORDER BY {id}) AS prev
    FROM {table}
    WHERE {id} > %(after)s AND {id} <= %(upto)s
) AS present
WHERE id - prev > 1
UNION ALL
SELECT coalesce(max({id})::bigint, %(after)s::bigint) + 1, %(upto)s::bigint
FROM {table}
WHERE {id} > %(after)s AND {id} <= %(upto)s
HAVING coalesce(max({id})::bigint, %(after)s::bigint) < %(upto)s::bigint
