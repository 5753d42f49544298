-- The sequences a table's id column takes its values from: the one an identity column owns
-- (PostgreSQL 10 and later), and the one its DEFAULT nextval(...) names (serial columns have
-- such a default). No row: the ids do not come from a sequence. Catalogs only, so any role may
-- read them; "readable" says whether this role may also read the sequence itself, which is
-- where openGauss keeps its cache size. relkind 'L' is openGauss' large sequence.
SELECT c.oid::regclass::text AS sequence, n.nspname AS schema_name, c.relname AS name,
       has_table_privilege(c.oid, 'SELECT') AS readable
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind IN ('S', 'L')
  AND c.oid IN (
      SELECT d.objid
      FROM pg_attribute AS a
      JOIN pg_depend AS d
        ON d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
       AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum AND d.deptype = 'i'
      WHERE a.attrelid = %(table)s::regclass AND a.attname = %(column)s
      UNION
      SELECT d.refobjid
      FROM pg_attribute AS a
      JOIN pg_attrdef AS ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
      JOIN pg_depend AS d
        ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
       AND d.refclassid = 'pg_class'::regclass
      WHERE a.attrelid = %(table)s::regclass AND a.attname = %(column)s
  )
ORDER BY 1
