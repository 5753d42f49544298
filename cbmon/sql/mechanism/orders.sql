-- The source article's order tables and their callbacks, in a form that runs.
-- Applied after schema.sql, into the first schema of search_path. Safe to apply more than once.
-- Every function pins its search_path (SET search_path FROM CURRENT) so a trigger fired from a
-- session with another search_path still finds these tables and cannot be redirected.

CREATE TABLE IF NOT EXISTS orders (
    id         bigserial PRIMARY KEY,
    customer   text,
    amount     numeric(12, 2) NOT NULL DEFAULT 0,
    status     text NOT NULL DEFAULT 'NEW',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS order_items (
    id          bigserial PRIMARY KEY,
    order_id    bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    item_sku    text NOT NULL,
    item_weight numeric(12, 3) NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS order_items_order_id_idx ON order_items (order_id);

-- 1. Trigger callback: every change to orders leaves an audit row.
CREATE TABLE IF NOT EXISTS audit_log (
    id         bigserial PRIMARY KEY,
    operation  text NOT NULL,
    table_name text NOT NULL,
    user_name  text NOT NULL,
    exec_time  timestamptz NOT NULL
);

CREATE OR REPLACE FUNCTION audit_trigger() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO audit_log (operation, table_name, user_name, exec_time)
    VALUES (TG_OP, TG_TABLE_NAME, current_user, current_timestamp);
    RETURN NULL;  -- AFTER trigger: the return value is ignored
END;
$$;

DROP TRIGGER IF EXISTS audit_dml_trigger ON orders;
CREATE TRIGGER audit_dml_trigger
    AFTER INSERT OR UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION audit_trigger();

-- 2. Event notification: the article's bare NOTIFY cannot see NEW; inside a trigger it can.
-- Delivered to listeners when the inserting transaction commits, never before.
CREATE OR REPLACE FUNCTION notify_order_created() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM pg_notify(
        'order_created',
        json_build_object('order_id', NEW.id, 'amount', NEW.amount)::text
    );
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS order_created_notify ON orders;
CREATE TRIGGER order_created_notify
    AFTER INSERT ON orders
    FOR EACH ROW EXECUTE FUNCTION notify_order_created();

-- 3. The case study: tell the supply chain when an order ships.
-- Aggregates cannot run over a single row in a row trigger, so the items are read from
-- order_items by subquery. A NOTIFY payload must stay under 8000 bytes: when the SKU list
-- would not fit, only the SKUs that fit are sent, sku_list_truncated is true and sku_count
-- gives the full number, so the listener knows to read order_items itself.
CREATE OR REPLACE FUNCTION supply_chain_payload(p_order_id bigint, p_budget integer DEFAULT 7000)
RETURNS jsonb
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    WITH skus AS (
        SELECT DISTINCT item_sku FROM order_items WHERE order_id = p_order_id
    ), sized AS (
        -- the running size of the JSON array if it ended at this SKU (quotes, escapes, comma)
        SELECT item_sku,
               sum(octet_length(to_json(item_sku)::text) + 2) OVER (ORDER BY item_sku) AS running
        FROM skus
    )
    SELECT jsonb_build_object(
        'order_id', p_order_id,
        'sku_list', coalesce(jsonb_agg(item_sku ORDER BY item_sku)
                             FILTER (WHERE running <= p_budget), '[]'::jsonb),
        'sku_count', count(*),
        'sku_list_truncated', coalesce(bool_or(running > p_budget), false),
        'total_weight', (SELECT coalesce(sum(item_weight), 0)
                         FROM order_items WHERE order_id = p_order_id)
    )
    FROM sized;
$$;

CREATE OR REPLACE FUNCTION notify_supply_chain() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    payload text := supply_chain_payload(NEW.id)::text;
BEGIN
    IF octet_length(payload) >= 8000 THEN
        -- cannot happen with the default budget; a reference is always small enough
        payload := json_build_object('order_id', NEW.id, 'sku_list_truncated', true)::text;
    END IF;
    PERFORM pg_notify('supply_chain_channel', payload);
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS order_status_trigger ON orders;
CREATE TRIGGER order_status_trigger
    AFTER UPDATE OF status ON orders
    FOR EACH ROW
    WHEN (NEW.status = 'SHIPPED' AND OLD.status IS DISTINCT FROM 'SHIPPED')
    EXECUTE FUNCTION notify_supply_chain();
