-- A read-only login role for cbmon: SELECT on exactly the tables it reads, nothing else.
-- Apply after schema.sql. Safe to apply more than once. Set its password yourself:
--   ALTER ROLE cbmon PASSWORD '...';   (or use a password file / certificate auth)
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {role_literal}) THEN
        EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', {role_literal});
    END IF;
END
$$;
-- Even a mistaken grant cannot let it write: its sessions are read-only by default.
ALTER ROLE {role} SET default_transaction_read_only = on;
GRANT USAGE ON SCHEMA {schema} TO {role};
GRANT SELECT ON {schema}.callback_logs, {schema}.callback_errors, {schema}.callback_queue TO {role};
