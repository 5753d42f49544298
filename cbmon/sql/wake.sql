-- Optional (cbmon schema apply --wake): tell cbmon serve the moment rows are committed, so it
-- polls at once instead of at its next poll interval. One notification per INSERT statement,
-- whatever the number of rows; PostgreSQL delivers it at commit (never for a rollback) and
-- folds identical ones of one transaction into one. The payload names the table, so replicas
-- watching other schemas of the same database are not woken. Any role may LISTEN: cbmon's
-- read-only role needs nothing more. Calls are schema-qualified, so no search_path can
-- substitute another function.
CREATE OR REPLACE FUNCTION cbmon_wake() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.pg_notify(
        'cbmon_wake', pg_catalog.concat(TG_TABLE_SCHEMA, '.', TG_TABLE_NAME));
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS cbmon_wake ON callback_logs;
CREATE TRIGGER cbmon_wake AFTER INSERT ON callback_logs
    FOR EACH STATEMENT EXECUTE PROCEDURE cbmon_wake();

DROP TRIGGER IF EXISTS cbmon_wake ON callback_errors;
CREATE TRIGGER cbmon_wake AFTER INSERT ON callback_errors
    FOR EACH STATEMENT EXECUTE PROCEDURE cbmon_wake();
