-- The source article's order tables and their callbacks, in a form that runs on PostgreSQL and
-- openGauss 5.0 alike. Applied after schema.sql, into {schema}. Safe to apply more than once.
-- Function bodies name their tables and functions with the schema, so a trigger fired from a
-- session with another search_path still finds them and cannot be redirected: openGauss
-- ignores a function's SET search_path, which PostgreSQL honours (it is kept for PostgreSQL).
-- Triggers say EXECUTE PROCEDURE, the only form openGauss has (PostgreSQL accepts both).
-- pg_notify is skipped where the server refuses it (openGauss in thread-pool mode, GaussDB, or
-- a DBA who revoked it from PUBLIC): a notification only wakes listeners, who poll anyway.

CREATE TABLE IF NOT EXISTS {schema}.orders (
    id         bigserial PRIMARY KEY,
    customer   text,
    amount     numeric(12, 2) NOT NULL DEFAULT 0,
    status     text NOT NULL DEFAULT 'NEW',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS {schema}.order_items (
    id          bigserial PRIMARY KEY,
    order_id    bigint NOT NULL REFERENCES {schema}.orders (id) ON DELETE CASCADE,
    item_sku    text NOT NULL,
    item_weight numeric(12, 3) NOT NULL DEFAULT 0
);
DO $$
BEGIN
    -- openGauss has no CREATE INDEX IF NOT EXISTS
    IF NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = {schema_literal} AND c.relname = 'order_items_order_id_idx') THEN
        CREATE INDEX order_items_order_id_idx ON {schema}.order_items (order_id);
    END IF;
END
$$;

-- 1. Trigger callback: every change to orders leaves an audit row.
CREATE TABLE IF NOT EXISTS {schema}.audit_log (
    id         bigserial PRIMARY KEY,
    operation  text NOT NULL,
    table_name text NOT NULL,
    user_name  text NOT NULL,
    exec_time  timestamptz NOT NULL
);

CREATE OR REPLACE FUNCTION {schema}.audit_trigger() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO {schema}.audit_log (operation, table_name, user_name, exec_time)
    VALUES (TG_OP, TG_TABLE_NAME, current_user, current_timestamp);
    RETURN NULL;  -- AFTER trigger: the return value is ignored
END;
$$;

DROP TRIGGER IF EXISTS audit_dml_trigger ON {schema}.orders;
CREATE TRIGGER audit_dml_trigger
    AFTER INSERT OR UPDATE OR DELETE ON {schema}.orders
    FOR EACH ROW EXECUTE PROCEDURE {schema}.audit_trigger();

-- 2. Event notification: the article's bare NOTIFY cannot see NEW; inside a trigger it can.
-- Delivered to listeners when the inserting transaction commits, never before.
CREATE OR REPLACE FUNCTION {schema}.notify_order_created() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    BEGIN
        PERFORM pg_notify(
            'order_created',
            json_build_object('order_id', NEW.id, 'amount', NEW.amount)::text
        );
    EXCEPTION WHEN feature_not_supported OR insufficient_privilege THEN
        NULL;
    END;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS order_created_notify ON {schema}.orders;
CREATE TRIGGER order_created_notify
    AFTER INSERT ON {schema}.orders
    FOR EACH ROW EXECUTE PROCEDURE {schema}.notify_order_created();

-- 3. The case study: tell the supply chain when an order ships.
-- Aggregates cannot run over a single row in a row trigger, so the items are read from
-- order_items by subquery. A NOTIFY payload must stay under 8000 bytes: when the SKU list
-- would not fit, only the SKUs that fit are sent, sku_list_truncated is true and sku_count
-- gives the full number, so the listener knows to read order_items itself.
CREATE OR REPLACE FUNCTION {schema}.supply_chain_payload(p_order_id bigint, p_budget integer DEFAULT 7000)
RETURNS jsonb
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    -- json_* builders and no aggregate FILTER: openGauss 5.0 has neither jsonb_build_object,
    -- jsonb_agg nor FILTER. The json goes to jsonb through text (a cast every version has).
    WITH skus AS (
        SELECT DISTINCT item_sku FROM {schema}.order_items WHERE order_id = p_order_id
    ), sized AS (
        -- the running size of the JSON array if it ended at this SKU (quotes, escapes, comma)
        SELECT item_sku,
               sum(octet_length(to_json(item_sku)::text) + 2) OVER (ORDER BY item_sku) AS running
        FROM skus
    )
    SELECT json_build_object(
        'order_id', p_order_id,
        'sku_list', (SELECT coalesce(json_agg(item_sku ORDER BY item_sku), '[]')
                     FROM sized WHERE running <= p_budget),
        'sku_count', (SELECT count(*) FROM sized),
        'sku_list_truncated', (SELECT coalesce(bool_or(running > p_budget), false) FROM sized),
        'total_weight', (SELECT coalesce(sum(item_weight), 0)
                         FROM {schema}.order_items WHERE order_id = p_order_id)
    )::text::jsonb;
$$;

CREATE OR REPLACE FUNCTION {schema}.notify_supply_chain() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    payload text := {schema}.supply_chain_payload(NEW.id)::text;
BEGIN
    IF octet_length(payload) >= 8000 THEN
        -- cannot happen with the default budget; a reference is always small enough
        payload := json_build_object('order_id', NEW.id, 'sku_list_truncated', true)::text;
    END IF;
    BEGIN
        PERFORM pg_notify('supply_chain_channel', payload);
    EXCEPTION WHEN feature_not_supported OR insufficient_privilege THEN
        NULL;
    END;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS order_status_trigger ON {schema}.orders;
CREATE TRIGGER order_status_trigger
    AFTER UPDATE OF status ON {schema}.orders
    FOR EACH ROW
    WHEN (NEW.status = 'SHIPPED' AND OLD.status IS DISTINCT FROM 'SHIPPED')
    EXECUTE PROCEDURE {schema}.notify_supply_chain();
