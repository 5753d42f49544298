-- The mechanism's scheduled job: hand leases of workers that died back to the queue, so their
-- callbacks are tried again. Applied after limits.sql, into {schema}; pg_cron (or PG_JOB on
-- openGauss) runs it every minute where the server has a scheduler. Safe to apply again.
CREATE OR REPLACE FUNCTION {schema}.expire_callback_leases() RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    expired integer;
BEGIN
    UPDATE {schema}.callback_queue
    SET locked_until = NULL
    WHERE processed_at IS NULL AND locked_until < now();
    GET DIAGNOSTICS expired = ROW_COUNT;
    RETURN expired;
END;
$$;
