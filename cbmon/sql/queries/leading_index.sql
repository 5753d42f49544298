-- An index of the table whose first column is the one named (a row is then found by it in an
-- index probe). indkey is an int2vector; its first element is at position 0.
SELECT 1
FROM pg_index AS i
JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = %(table)s::regclass AND a.attname = %(column)s
LIMIT 1
