-- The poll's snapshot bounds: every transaction with an id below xmin has ended.
SELECT txid_snapshot_xmin(s), txid_snapshot_xmax(s)
FROM (SELECT txid_current_snapshot() AS s) AS snap
