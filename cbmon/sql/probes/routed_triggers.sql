-- Event types that triggers route through the mechanism's route_callback(event_type).
SELECT DISTINCT split_part(encode(t.tgargs, 'escape'), '\000', 1) AS event_type
FROM pg_trigger AS t
JOIN pg_proc AS p ON p.oid = t.tgfoid
JOIN pg_namespace AS n ON n.oid = p.pronamespace
WHERE n.nspname = %(schema)s AND p.proname = 'route_callback' AND t.tgnargs > 0
