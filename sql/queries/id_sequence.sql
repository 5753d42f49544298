-- The sequences behind a table's id column and their cache sizes: the one a serial or
-- identity column owns, and any a DEFAULT nextval(...) names. No row: the ids do not come
-- from a sequence. Catalogs only, so any role may run it.
SELECT s.seqrelid::regclass::text AS sequence, s.seqcache AS cache
FROM pg_attribute AS a
JOIN pg_depend AS d
  ON d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
 AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum AND d.deptype IN ('a', 'i')
JOIN pg_sequence AS s ON s.seqrelid = d.objid
WHERE a.attrelid = %(table)s::regclass AND a.attname = %(column)s
UNION
SELECT s.seqrelid::regclass::text, s.seqcache
FROM pg_attribute AS a
JOIN pg_attrdef AS ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
JOIN pg_depend AS d
  ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
 AND d.refclassid = 'pg_class'::regclass
JOIN pg_sequence AS s ON s.seqrelid = d.refobjid
WHERE a.attrelid = %(table)s::regclass AND a.attname = %(column)s
