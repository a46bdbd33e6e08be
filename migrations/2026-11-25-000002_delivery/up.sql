-- Production-grade delivery: progress reporting, transactional effects, retention and rescuer indexes.

ALTER TABLE jobs ADD COLUMN progress jsonb;
COMMENT ON COLUMN jobs.progress IS 'Latest {"percent", "message"} reported by the running attempt (ctx.progress); kept after it ends.';

-- The rescuer looks for queued jobs whose dispatch may have been lost; keep that scan on the queued few.
CREATE INDEX jobs_queued_idx ON jobs (created_at) WHERE status = 'queued';

-- Retention deletes old published rows in bounded batches without scanning the young ones.
CREATE INDEX outbox_published_at_idx ON outbox (published_at) WHERE published_at IS NOT NULL;

CREATE TABLE job_effects (
    id          bigserial   PRIMARY KEY,
    job_id      uuid        NOT NULL,
    attempt     integer     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE  job_effects IS 'One row per execution of the built-in `effect` kind, written in the same transaction as its success. Tests and `make chaos` count rows per job: more than one is a duplicate effect.';
COMMENT ON COLUMN job_effects.job_id IS 'The job whose execution this records (jobs.id).';
COMMENT ON COLUMN job_effects.attempt IS 'The attempt that took effect.';
CREATE INDEX job_effects_job_idx ON job_effects (job_id);
