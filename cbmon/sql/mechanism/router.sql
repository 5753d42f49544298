-- What gets queued, where it goes and how often it is retried; applied after orders.sql.
-- Safe to apply more than once; existing router rows are kept.

-- One row per event type. Only the owner should write it: handler_function names a function
-- every routed event runs.
CREATE TABLE IF NOT EXISTS callback_router (
    event_type       text PRIMARY KEY,
    handler_function text,          -- f(jsonb) RETURNS jsonb: the payload to queue, NULL to skip
    retry_policy     jsonb NOT NULL
        DEFAULT '{"max_retries": 3, "backoff": "exponential", "backoff_seconds": 1, "max_backoff_seconds": 300}',
    target_url       text,          -- where the worker POSTs; NULL means the worker's default
    enabled          boolean NOT NULL DEFAULT true
);

-- Handlers for the two order events. Each turns the changed row into the payload to deliver.
CREATE OR REPLACE FUNCTION order_created_payload(p_row jsonb) RETURNS jsonb
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT jsonb_build_object(
        'order_id', (p_row ->> 'id')::bigint,
        'amount', (p_row ->> 'amount')::numeric,
        'customer', p_row ->> 'customer'
    );
$$;

-- A queued payload has no NOTIFY size limit, so the shipped event carries every SKU.
CREATE OR REPLACE FUNCTION order_shipped_payload(p_row jsonb) RETURNS jsonb
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT supply_chain_payload((p_row ->> 'id')::bigint, 2147483647);
$$;

INSERT INTO callback_router (event_type, handler_function)
VALUES ('order_created', 'order_created_payload'),
       ('order_shipped', 'order_shipped_payload')
ON CONFLICT (event_type) DO NOTHING;

-- Queue one event through its router row. The article's DO block could not see TG_EVENT or
-- NEW; this is the function both the trigger below and handle_callback() use.
CREATE OR REPLACE FUNCTION enqueue_callback(p_event_type text, p_data jsonb) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    route   callback_router%ROWTYPE;
    payload jsonb := p_data;
    queued  bigint;
BEGIN
    SELECT * INTO route FROM callback_router WHERE event_type = p_event_type;
    IF NOT FOUND OR NOT route.enabled THEN
        RETURN NULL;
    END IF;
    IF route.handler_function IS NOT NULL THEN
        -- %I quotes the name: the router row can pick a function, never inject SQL
        EXECUTE format('SELECT %I($1)', route.handler_function) INTO payload USING p_data;
    END IF;
    IF payload IS NULL THEN
        RETURN NULL;
    END IF;
    -- the rate-limit trigger may drop the row, leaving queued NULL
    INSERT INTO callback_queue (event_type, payload) VALUES (p_event_type, payload)
    RETURNING id INTO queued;
    RETURN queued;
END;
$$;

-- Trigger form: the event type is the trigger's argument, the data the changed row.
CREATE OR REPLACE FUNCTION route_callback() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM enqueue_callback(
        coalesce(TG_ARGV[0], TG_TABLE_NAME || '_' || lower(TG_OP)),
        to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END)
    );
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS order_created_callback ON orders;
CREATE TRIGGER order_created_callback
    AFTER INSERT ON orders
    FOR EACH ROW EXECUTE FUNCTION route_callback('order_created');

DROP TRIGGER IF EXISTS order_shipped_callback ON orders;
CREATE TRIGGER order_shipped_callback
    AFTER UPDATE OF status ON orders
    FOR EACH ROW
    WHEN (NEW.status = 'SHIPPED' AND OLD.status IS DISTINCT FROM 'SHIPPED')
    EXECUTE FUNCTION route_callback('order_shipped');

-- Wake the workers: one notification per event type per transaction (PostgreSQL folds
-- identical ones), sent at commit, so a worker never sees a row before it is visible.
CREATE OR REPLACE FUNCTION notify_callback_queue() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM pg_notify('callback_queue', NEW.event_type);
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS callback_queue_notify ON callback_queue;
CREATE TRIGGER callback_queue_notify
    AFTER INSERT ON callback_queue
    FOR EACH ROW EXECUTE FUNCTION notify_callback_queue();

-- The least-privilege entry point: applications call this instead of writing the tables.
-- SECURITY DEFINER runs it with its owner's rights, so the search_path is pinned to this
-- schema and pg_temp (last) as PostgreSQL's documentation requires for such functions.
CREATE OR REPLACE FUNCTION handle_callback(p_event_type text, p_data jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM callback_router WHERE event_type = p_event_type AND enabled) THEN
        RAISE EXCEPTION 'no enabled route for event type %', p_event_type
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN enqueue_callback(p_event_type, p_data);
END;
$$;
REVOKE ALL ON FUNCTION handle_callback(text, jsonb) FROM PUBLIC;
