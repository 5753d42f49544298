-- The reference callback schema cbmon monitors out of the box.
-- Safe to apply more than once. Tables land in the first schema of search_path.
-- Indexes are created by a DO block that looks first: openGauss has no CREATE INDEX IF NOT EXISTS.
-- Every column beyond the documented ones is nullable or has a default, so a row with just
-- the documented columns inserts.

-- One row per delivery attempt.
CREATE TABLE IF NOT EXISTS callback_logs (
    id             bigserial PRIMARY KEY,
    event_type     text NOT NULL,
    status         text NOT NULL,             -- 'COMPLETED' is success, anything else a failure
    execution_time double precision,          -- milliseconds; NULL when no response came back
    created_at     timestamptz NOT NULL DEFAULT now(),
    queue_id       bigint,                    -- the queue row this attempt delivered, if any
    attempt        integer,                   -- 1 for the first try, up to 1 + retries
    http_status    integer,
    target         text                       -- the receiver: scheme://host[:port], no path
);

-- One row per recorded failure.
CREATE TABLE IF NOT EXISTS callback_errors (
    id            bigserial PRIMARY KEY,
    event_type    text,
    error_message text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    queue_id      bigint,
    attempt       integer
);

-- Work waiting to be delivered. processed_at IS NULL means waiting: that is the backlog.
CREATE TABLE IF NOT EXISTS callback_queue (
    id           bigserial PRIMARY KEY,
    event_type   text NOT NULL,
    payload      jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,               -- a retry is due from then on
    last_error   text,
    locked_until timestamptz,                  -- a worker's lease: in flight until then
    outcome      text                          -- 'delivered' or 'dead' once settled
);
-- Tables made by an earlier version get the lifecycle's columns (cbmon reads callbacks, not
-- only attempts, from them; every one is nullable, so writers need no change).
DO $$
DECLARE
    wanted text[][] := ARRAY[
        ARRAY['callback_logs', 'target', 'text'],
        ARRAY['callback_queue', 'locked_until', 'timestamptz'],
        ARRAY['callback_queue', 'outcome', 'text']];
    i integer;
BEGIN
    FOR i IN 1 .. array_length(wanted, 1) LOOP
        IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                       WHERE table_schema = current_schema() AND table_name = wanted[i][1]
                         AND column_name = wanted[i][2]) THEN
            EXECUTE format('ALTER TABLE %I ADD COLUMN %I %s', wanted[i][1], wanted[i][2],
                           wanted[i][3]);
        END IF;
    END LOOP;
END
$$;

-- Reports and the SLO window read the log and the errors by time. Backlog size and the oldest
-- waiting item come from the small partial index alone, whatever the size of the queue.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = current_schema() AND c.relname = 'callback_logs_created_at_idx') THEN
        CREATE INDEX callback_logs_created_at_idx ON callback_logs (created_at);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = current_schema() AND c.relname = 'callback_errors_created_at_idx') THEN
        CREATE INDEX callback_errors_created_at_idx ON callback_errors (created_at);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = current_schema() AND c.relname = 'callback_queue_waiting_idx') THEN
        CREATE INDEX callback_queue_waiting_idx ON callback_queue (created_at)
            WHERE processed_at IS NULL;
    END IF;
    -- A callback's attempts by its queue row: telling a delivery from a duplicate, one probe.
    IF NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = current_schema() AND c.relname = 'callback_logs_queue_id_idx') THEN
        CREATE INDEX callback_logs_queue_id_idx ON callback_logs (queue_id);
    END IF;
    -- Dead letters kept for inspection, counted from their own small index.
    IF NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = current_schema() AND c.relname = 'callback_queue_dead_idx') THEN
        CREATE INDEX callback_queue_dead_idx ON callback_queue (id) WHERE outcome = 'dead';
    END IF;
END
$$;

-- The per-event-type summary the source article describes, fixed to use the real columns.
CREATE OR REPLACE VIEW callback_metrics AS
SELECT l.event_type,
       count(*)                 AS total_calls,
       avg(l.execution_time)    AS avg_time,
       max(l.execution_time)    AS max_time,
       (SELECT count(*) FROM callback_errors e WHERE e.event_type = l.event_type) AS errors
FROM callback_logs l
GROUP BY l.event_type;
