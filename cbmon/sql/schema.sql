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
    http_status    integer
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
    next_attempt_at timestamptz,
    last_error   text
);
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
