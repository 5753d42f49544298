-- Token-bucket rate limiting of the queue; applied after router.sql, into {schema}, in the form
-- orders.sql describes. Safe to apply again.
-- A bucket is looked up by the row's event type, else 'default'; with neither there is no limit.
CREATE TABLE IF NOT EXISTS {schema}.callback_limits (
    bucket_id         text PRIMARY KEY,
    tokens            integer NOT NULL DEFAULT 100,
    last_refill       timestamptz,
    capacity          integer NOT NULL DEFAULT 100 CHECK (capacity >= 0),
    refill_per_second double precision NOT NULL DEFAULT 10 CHECK (refill_per_second >= 0),
    dropped           bigint NOT NULL DEFAULT 0   -- rows refused, so the loss is visible
);

-- Take one token for p_event_type; false when its bucket is empty.
-- The bucket row is locked, so concurrent inserts take tokens one at a time.
CREATE OR REPLACE FUNCTION {schema}.take_callback_token(p_event_type text) RETURNS boolean
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    bucket {schema}.callback_limits%ROWTYPE;
    now_ts timestamptz := clock_timestamp();  -- not now(): a long transaction must refill too
    added  bigint := 0;
    passed boolean;
BEGIN
    SELECT * INTO bucket FROM {schema}.callback_limits
    WHERE bucket_id IN (p_event_type, 'default')
    ORDER BY bucket_id = p_event_type DESC
    LIMIT 1
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN true;
    END IF;
    IF bucket.last_refill IS NULL THEN
        bucket.last_refill := now_ts;
    ELSE
        added := floor(extract(epoch FROM now_ts - bucket.last_refill) * bucket.refill_per_second);
    END IF;
    IF added > 0 THEN
        bucket.tokens := least(bucket.capacity::bigint, bucket.tokens + added);
        -- keep the fraction of a token already earned, unless the bucket is full
        bucket.last_refill := CASE WHEN bucket.tokens >= bucket.capacity THEN now_ts
            -- interval arithmetic: openGauss has no make_interval
            ELSE bucket.last_refill
                 + interval '1 second' * (added / bucket.refill_per_second) END;
    END IF;
    passed := bucket.tokens > 0;
    IF passed THEN
        bucket.tokens := bucket.tokens - 1;
    ELSE
        bucket.dropped := bucket.dropped + 1;
    END IF;
    UPDATE {schema}.callback_limits
    SET tokens = bucket.tokens, last_refill = bucket.last_refill, dropped = bucket.dropped
    WHERE bucket_id = bucket.bucket_id;
    RETURN passed;
END;
$$;

-- The article's rate_limited_callback, as a BEFORE INSERT trigger on the queue: a row over
-- the limit is dropped (the insert succeeds with nothing inserted) with a notice.
CREATE OR REPLACE FUNCTION {schema}.rate_limited_callback() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF {schema}.take_callback_token(NEW.event_type) THEN
        RETURN NEW;
    END IF;
    RAISE NOTICE 'Rate limit exceeded';
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS callback_queue_rate_limit ON {schema}.callback_queue;
CREATE TRIGGER callback_queue_rate_limit
    BEFORE INSERT ON {schema}.callback_queue
    FOR EACH ROW EXECUTE PROCEDURE {schema}.rate_limited_callback();
