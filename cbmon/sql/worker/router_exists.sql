-- Whether the schema has the router (the foundation tables work without it).
SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = %(schema)s AND tablename = 'callback_router'
