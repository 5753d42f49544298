-- A sequence's cache size on PostgreSQL 10 and later, from the catalog (no privilege needed).
-- openGauss has no pg_sequence: there cbmon reads cache_value from the sequence itself.
SELECT seqcache FROM pg_sequence WHERE seqrelid = %(sequence)s::regclass
