-- The newest id (above the high water when the sequence is known, so that ids
-- taken by transactions still open above it are not walked through at every poll); the
-- newest id the sequence has handed out (NULL when unknown); the table's identity: its oid,
-- and its storage (the files of the table and of its partitions, which TRUNCATE, VACUUM FULL
-- and CLUSTER replace); and the fingerprint of the witness, the newest row read, NULL when no
-- row holds its id any more. Index probes only.
SELECT ({newest}) AS head,
       c.oid::bigint AS relation,
       (SELECT coalesce(sum(p.relfilenode::bigint), 0)
        FROM pg_class AS p
        WHERE p.oid = c.oid
           OR p.oid IN (SELECT i.inhrelid FROM pg_inherits AS i WHERE i.inhparent = c.oid)
       ) AS storage,
       (SELECT {fingerprint} FROM {table} WHERE {id} = %(witness)s) AS witness,
       ({issued}) AS issued
FROM pg_class AS c
WHERE c.oid = %(relation)s::regclass
