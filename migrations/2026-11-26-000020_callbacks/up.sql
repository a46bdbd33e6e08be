-- Completion callbacks (#16): a job submitted with a callback_url gets its status document POSTed there when it ends
-- (succeeded, failed or cancelled). The delivery is itself an outbox row, in `callbacks`, written by the very
-- transaction that makes the job terminal: a trigger on the status change, so no path that ends a job (worker,
-- rescuer, cancel, a future one) can forget it, and a process that dies right after the commit loses nothing.
-- The api delivers them (it renders the status document): claim with a lease, POST, then delete the row and record
-- the outcome on the job; a failure is retried with backoff. Expand-only: a new table, nullable columns and columns
-- with constant defaults, a trigger that does nothing for jobs without a callback_url (every job the previous release
-- writes).
ALTER TABLE jobs ADD COLUMN callback_url text;
ALTER TABLE jobs ADD COLUMN callback_state text;
ALTER TABLE jobs ADD COLUMN callback_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN callback_last_error text;
ALTER TABLE tenants ADD COLUMN callback_secret text;
COMMENT ON COLUMN jobs.callback_url IS 'POST /v1/jobs callback_url: where the status document goes when the job ends.';
COMMENT ON COLUMN jobs.callback_state IS 'pending (the latest end is not delivered yet) | delivered | failed (gave up); NULL before the job ends or without a callback_url.';
COMMENT ON COLUMN jobs.callback_attempts IS 'Delivery attempts of the latest end''s callback.';
COMMENT ON COLUMN jobs.callback_last_error IS 'Why the latest delivery attempt failed (NULL once delivered).';
COMMENT ON COLUMN tenants.callback_secret IS 'Standard Webhooks signing secret (whsec_...) of this tenant''s callbacks; made at first use.';

CREATE TABLE callbacks (
    id bigserial PRIMARY KEY,
    job_id uuid NOT NULL,
    url text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    available_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    leased_until timestamptz,
    last_error text
);
CREATE INDEX callbacks_due_idx ON callbacks (available_at);
CREATE INDEX callbacks_job_idx ON callbacks (job_id);
COMMENT ON TABLE callbacks IS 'Callbacks to deliver (the outbox of completion callbacks): a row per job end, deleted once delivered or given up.';
COMMENT ON COLUMN callbacks.leased_until IS 'An api process is sending it until then; after that any may take it again (at-least-once).';

CREATE FUNCTION ackbox_enqueue_callback() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.callback_url IS NOT NULL
       AND NEW.status IN ('succeeded', 'failed', 'cancelled')
       AND OLD.status NOT IN ('succeeded', 'failed', 'cancelled') THEN
        INSERT INTO callbacks (job_id, url) VALUES (NEW.id, NEW.callback_url);
        NEW.callback_state := 'pending';
        NEW.callback_attempts := 0;
        NEW.callback_last_error := NULL;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER jobs_enqueue_callback BEFORE UPDATE OF status ON jobs
    FOR EACH ROW WHEN (NEW.callback_url IS NOT NULL) EXECUTE FUNCTION ackbox_enqueue_callback();

GRANT SELECT, INSERT, UPDATE, DELETE ON callbacks TO ackbox_api;
GRANT INSERT ON callbacks TO ackbox_relay, ackbox_worker;
GRANT USAGE ON SEQUENCE callbacks_id_seq TO ackbox_api, ackbox_relay, ackbox_worker;
GRANT SELECT (callback_secret), UPDATE (callback_secret) ON tenants TO ackbox_api;
GRANT SELECT, DELETE ON callbacks TO ackbox_relay; -- retention deletes a deleted job's callbacks
