-- The sequences a table's id column takes its values from, and their cache sizes: the one an
-- identity column owns, and the one its DEFAULT nextval(...) names (serial columns have such
-- a default). No row: the ids do not come from a sequence. Catalogs only: any role may read.
SELECT s.seqrelid::regclass::text AS sequence, s.seqcache AS cache
FROM pg_attribute AS a
JOIN pg_depend AS d
  ON d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
 AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum AND d.deptype = 'i'
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
