-- The type of one column, a domain resolved to its base type: numeric, double precision, ...
SELECT format_type(CASE WHEN t.typbasetype <> 0 THEN t.typbasetype ELSE t.oid END, NULL)
FROM pg_attribute AS a
JOIN pg_type AS t ON t.oid = a.atttypid
WHERE a.attrelid = %(table)s::regclass AND a.attname = %(column)s AND NOT a.attisdropped
