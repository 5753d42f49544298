-- The transactions running now in this database, except our own: the virtual transaction id
-- every transaction holds from its first statement to its end (whether or not it has a
-- transaction id yet), and prepared transactions, which hold no virtual one.
-- pg_locks and pg_prepared_xacts are readable by any role; pg_stat_activity shows any role
-- the database and the user of every backend. Backends without a user (autovacuum and other
-- background processes) never insert rows, so they are left out.
SELECT l.virtualxid AS running
FROM pg_locks AS l
JOIN pg_stat_activity AS a ON a.pid = l.pid
WHERE l.locktype = 'virtualxid'
  AND l.mode = 'ExclusiveLock'
  AND l.granted
  AND l.pid <> pg_backend_pid()
  AND a.datname = current_database()
  AND a.usesysid IS NOT NULL
UNION ALL
SELECT 'prepared:' || p.transaction::text
FROM pg_prepared_xacts AS p
WHERE p.database = current_database()
