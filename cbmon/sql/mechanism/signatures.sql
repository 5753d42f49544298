-- Signed callbacks into the database, verified with pgcrypto; applied after executor.sql, into
-- {schema}, only where the pgcrypto extension is available. Safe to apply again. Written in the
-- form orders.sql describes; no ON CONFLICT, and no '' literal (NULL in openGauss' A mode).
-- The signature is Standard Webhooks' (what the worker sends and most senders use):
--   webhook-signature = 'v1,' || base64(HMAC-SHA256(secret, msg_id || '.' || timestamp || '.' || body))
-- The article's pgcrypto.verify_hmac does not exist; hmac(data, key, 'sha256') does.

-- Secrets as 'whsec_' || base64(key). Looked up by event type, else 'default'.
-- Nobody but the owner reads them; handle_signed_callback() does so with the owner's rights.
CREATE TABLE IF NOT EXISTS {schema}.callback_secrets (
    key_id text PRIMARY KEY,
    secret text NOT NULL
);
REVOKE ALL ON {schema}.callback_secrets FROM PUBLIC;

-- Message ids already accepted: a redelivered message is acknowledged, not queued twice.
CREATE TABLE IF NOT EXISTS {schema}.callback_received (
    msg_id      text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON {schema}.callback_received FROM PUBLIC;

CREATE OR REPLACE FUNCTION {schema}.webhook_signature(
    p_secret text, p_msg_id text, p_timestamp bigint, p_body text
) RETURNS text
LANGUAGE sql IMMUTABLE STRICT SET search_path FROM CURRENT AS $$
    SELECT 'v1,' || encode(
        {crypto}.hmac(
            convert_to(p_msg_id || '.' || p_timestamp::text || '.' || p_body, 'UTF8'),
            decode(CASE WHEN substr(p_secret, 1, 6) = 'whsec_' THEN substr(p_secret, 7)
                        ELSE p_secret END, 'base64'),
            'sha256'),
        'base64');
$$;

-- True when one of the space-separated signatures matches and the timestamp is within five
-- minutes. Both sides are compared as HMACs under a fresh random key, so the time the
-- comparison takes tells an attacker nothing about the expected signature.
CREATE OR REPLACE FUNCTION {schema}.verify_webhook(
    p_secret text, p_msg_id text, p_timestamp bigint, p_body text, p_signatures text
) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $$
DECLARE
    blind     bytea := {crypto}.gen_random_bytes(32);
    expected  bytea;
    candidate text;
    matched   boolean := false;
BEGIN
    IF p_secret IS NULL OR p_msg_id IS NULL OR p_timestamp IS NULL OR p_body IS NULL
       OR p_signatures IS NULL THEN
        RETURN false;
    END IF;
    IF abs(extract(epoch FROM clock_timestamp()) - p_timestamp) > 300 THEN
        RETURN false;
    END IF;
    expected := {crypto}.hmac(
        convert_to({schema}.webhook_signature(p_secret, p_msg_id, p_timestamp, p_body), 'UTF8'),
        blind, 'sha256');
    FOREACH candidate IN ARRAY string_to_array(p_signatures, ' ') LOOP
        IF {crypto}.hmac(convert_to(candidate, 'UTF8'), blind, 'sha256') = expected THEN
            matched := true;
        END IF;
    END LOOP;
    RETURN matched;
END;
$$;
REVOKE ALL ON FUNCTION {schema}.verify_webhook(text, text, bigint, text, text) FROM PUBLIC;

-- The article's verify-then-process block as one entry point: an invalid signature raises,
-- a valid one queues the body through the router; a repeated msg_id queues nothing (NULL).
CREATE OR REPLACE FUNCTION {schema}.handle_signed_callback(
    p_event_type text, p_msg_id text, p_timestamp bigint, p_body text, p_signature text
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    key text;
BEGIN
    SELECT secret INTO key FROM {schema}.callback_secrets
    WHERE key_id IN (p_event_type, 'default')
    ORDER BY key_id = p_event_type DESC
    LIMIT 1;
    IF key IS NULL THEN
        RAISE EXCEPTION 'no signing secret for event type %', p_event_type
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT {schema}.verify_webhook(key, p_msg_id, p_timestamp, p_body, p_signature) THEN
        RAISE EXCEPTION 'Invalid signature' USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    BEGIN
        INSERT INTO {schema}.callback_received (msg_id) VALUES (p_msg_id);
    EXCEPTION WHEN unique_violation THEN
        RETURN NULL;  -- a redelivery: acknowledged, not queued again
    END;
    RETURN {schema}.handle_callback(p_event_type, p_body::jsonb);
END;
$$;
REVOKE ALL ON FUNCTION {schema}.handle_signed_callback(text, text, bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION {schema}.handle_signed_callback(text, text, bigint, text, text)
    TO {executor};
