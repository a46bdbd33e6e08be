-- Correct under real operations (#13). Expand only: every column is nullable or has a constant default, so the
-- previous release keeps running while this is applied (see migrations/README.md, checked by deploy/lint-migrations.sh).

-- Stale-dispatch rescue backs off per job instead of re-sending every queued job on every pass.
ALTER TABLE jobs ADD COLUMN last_dispatched_at timestamptz;
ALTER TABLE jobs ADD COLUMN redispatches integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN jobs.last_dispatched_at IS 'When the rescuer last sent a new dispatch for this queued job (NULL: only the original dispatch).';
COMMENT ON COLUMN jobs.redispatches IS 'Dispatches the rescuer sent again for this job; its next one waits dispatch_timeout * 2^redispatches (capped).';

-- A worker that receives a job of a kind it does not run leaves it queued and says so here; the rescuer dispatches
-- it again once a worker that runs the kind registers.
ALTER TABLE jobs ADD COLUMN dispatch_skipped_at timestamptz;
COMMENT ON COLUMN jobs.dispatch_skipped_at IS 'Set when a worker without a handler for the kind received the dispatch; cleared when it is dispatched again.';

ALTER TABLE job_kinds ADD COLUMN registered_at timestamptz;
COMMENT ON COLUMN job_kinds.registered_at IS 'When a worker running this kind last started (last_seen_at is refreshed while it runs).';

-- A row the broker refuses for good (message too large, ...) is dead: never retried, shown by `ackbox outbox ls --dead`.
ALTER TABLE outbox ADD COLUMN dead_at timestamptz;
COMMENT ON COLUMN outbox.dead_at IS 'Set when the broker refused the row with an error no retry can fix; the relay no longer claims it and its job failed with undeliverable.';

-- Workers LISTEN for cancel requests of the jobs they run, instead of waiting for their next heartbeat.
CREATE FUNCTION ackbox_notify_job_cancel() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ackbox_job_cancel', NEW.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_cancel_notify AFTER UPDATE OF cancel_requested_at ON jobs
    FOR EACH ROW WHEN (OLD.cancel_requested_at IS NULL AND NEW.cancel_requested_at IS NOT NULL)
    EXECUTE FUNCTION ackbox_notify_job_cancel();
