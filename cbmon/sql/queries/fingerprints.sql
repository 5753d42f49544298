-- The ids and fingerprints of the newest rows among those selected, for the reader's ledger:
-- a backward walk of the id index, at most as many rows as the ledger keeps.
SELECT {id}::bigint, {fingerprint}
FROM {table}
WHERE {where}
ORDER BY {id} DESC
LIMIT %(limit)s
