-- The least-privilege callback account; applied after router.sql. Safe to apply again.
-- It cannot log in and holds no table privilege: it may only run handle_callback(), which
-- does its work with the owner's rights. Grant it to the login roles of applications:
--   GRANT {executor} TO some_app;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {executor_literal}) THEN
        -- attributes in the server's grammar (openGauss: no NOSUPERUSER, PASSWORD DISABLE)
        EXECUTE format('CREATE ROLE %I ' || {attributes}, {executor_literal});
    END IF;
END
$$;
GRANT USAGE ON SCHEMA {schema} TO {executor};
GRANT EXECUTE ON FUNCTION {schema}.handle_callback(text, jsonb) TO {executor};
