-- What gets queued, where it goes and how often it is retried; applied after orders.sql, into
-- {schema}, in the form orders.sql describes (qualified names, EXECUTE PROCEDURE, json_*
-- builders). Safe to apply more than once; existing router rows are kept.

-- One row per event type. Only the owner should write it: handler_function names a function
-- every routed event runs.
CREATE TABLE IF NOT EXISTS {schema}.callback_router (
    event_type       text PRIMARY KEY,
    handler_function text,          -- f(jsonb) RETURNS jsonb: the payload to queue, NULL to skip
    retry_policy     jsonb NOT NULL
        DEFAULT '{{"max_retries": 3, "backoff": "exponential", "backoff_seconds": 1, "max_backoff_seconds": 300}}',
    target_url       text,          -- where the worker POSTs; NULL means the worker's default
    enabled          boolean NOT NULL DEFAULT true
);

-- Handlers for the two order events. Each turns the changed row into the payload to deliver.
CREATE OR REPLACE FUNCTION {schema}.order_created_payload(p_row jsonb) RETURNS jsonb
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT json_build_object(
        'order_id', (p_row ->> 'id')::bigint,
        'amount', (p_row ->> 'amount')::numeric,
        'customer', p_row ->> 'customer'
    )::text::jsonb;
$$;

-- A queued payload has no NOTIFY size limit, so the shipped event carries every SKU.
CREATE OR REPLACE FUNCTION {schema}.order_shipped_payload(p_row jsonb) RETURNS jsonb
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT {schema}.supply_chain_payload((p_row ->> 'id')::bigint, 2147483647);
$$;

-- Only the rows missing (openGauss has no ON CONFLICT; this runs in schema apply's transaction).
INSERT INTO {schema}.callback_router (event_type, handler_function)
SELECT v.event_type, v.handler_function
FROM (VALUES ('order_created', 'order_created_payload'),
             ('order_shipped', 'order_shipped_payload')) AS v (event_type, handler_function)
WHERE NOT EXISTS (SELECT 1 FROM {schema}.callback_router AS r WHERE r.event_type = v.event_type);

-- Queue one event through its router row. The article's DO block could not see TG_EVENT or
-- NEW; this is the function both the trigger below and handle_callback() use.
CREATE OR REPLACE FUNCTION {schema}.enqueue_callback(p_event_type text, p_data jsonb) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    route   {schema}.callback_router%ROWTYPE;
    payload jsonb := p_data;
    queued  bigint;
BEGIN
    SELECT * INTO route FROM {schema}.callback_router WHERE event_type = p_event_type;
    IF NOT FOUND OR NOT route.enabled THEN
        RETURN NULL;
    END IF;
    IF route.handler_function IS NOT NULL THEN
        -- %I quotes the name: the router row can pick a function of this schema, never inject
        EXECUTE format('SELECT %I.%I($1)', {schema_literal}, route.handler_function)
            INTO payload USING p_data;
    END IF;
    IF payload IS NULL THEN
        RETURN NULL;
    END IF;
    -- the rate-limit trigger may drop the row, leaving queued NULL
    INSERT INTO {schema}.callback_queue (event_type, payload) VALUES (p_event_type, payload)
    RETURNING id INTO queued;
    RETURN queued;
END;
$$;

-- Trigger form: the event type is the trigger's argument, the data the changed row.
CREATE OR REPLACE FUNCTION {schema}.route_callback() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    data jsonb;
BEGIN
    -- row_to_json through text: openGauss has no to_jsonb
    IF TG_OP = 'DELETE' THEN
        data := row_to_json(OLD)::text::jsonb;
    ELSE
        data := row_to_json(NEW)::text::jsonb;
    END IF;
    PERFORM {schema}.enqueue_callback(
        coalesce(TG_ARGV[0], TG_TABLE_NAME || '_' || lower(TG_OP)), data
    );
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS order_created_callback ON {schema}.orders;
CREATE TRIGGER order_created_callback
    AFTER INSERT ON {schema}.orders
    FOR EACH ROW EXECUTE PROCEDURE {schema}.route_callback('order_created');

DROP TRIGGER IF EXISTS order_shipped_callback ON {schema}.orders;
CREATE TRIGGER order_shipped_callback
    AFTER UPDATE OF status ON {schema}.orders
    FOR EACH ROW
    WHEN (NEW.status = 'SHIPPED' AND OLD.status IS DISTINCT FROM 'SHIPPED')
    EXECUTE PROCEDURE {schema}.route_callback('order_shipped');

-- Wake the workers: one notification per event type per transaction (PostgreSQL folds
-- identical ones), sent at commit, so a worker never sees a row before it is visible.
CREATE OR REPLACE FUNCTION {schema}.notify_callback_queue() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    BEGIN
        PERFORM pg_notify('callback_queue', NEW.event_type);
    EXCEPTION WHEN feature_not_supported OR insufficient_privilege THEN
        NULL;  -- no NOTIFY on this server: workers find the row at their next poll
    END;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS callback_queue_notify ON {schema}.callback_queue;
CREATE TRIGGER callback_queue_notify
    AFTER INSERT ON {schema}.callback_queue
    FOR EACH ROW EXECUTE PROCEDURE {schema}.notify_callback_queue();

-- The least-privilege entry point: applications call this instead of writing the tables.
-- SECURITY DEFINER runs it with its owner's rights: every name in it is schema-qualified, and
-- on PostgreSQL the search_path is also pinned to this schema and pg_temp (last), as its
-- documentation requires for such functions.
CREATE OR REPLACE FUNCTION {schema}.handle_callback(p_event_type text, p_data jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM {schema}.callback_router
                   WHERE event_type = p_event_type AND enabled) THEN
        RAISE EXCEPTION 'no enabled route for event type %', p_event_type
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN {schema}.enqueue_callback(p_event_type, p_data);
END;
$$;
REVOKE ALL ON FUNCTION {schema}.handle_callback(text, jsonb) FROM PUBLIC;
