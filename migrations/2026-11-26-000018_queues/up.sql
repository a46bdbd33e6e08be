-- Queues (#16): every job belongs to one, by default its kind's (job_kinds.queue, which a worker registers from
-- ACKBOX_KIND_QUEUES; else 'default'). A queue exists once a worker serves it or an operator creates it, and can be
-- paused: its queued jobs are then not claimed (a worker that receives one marks it skipped, as for a kind it lacks),
-- running ones finish, and on resume the relay's rescuer dispatches the skipped ones again at once (resumed_at).
-- Expand-only: a new table, and columns with constant defaults that the previous release neither writes nor reads.
CREATE TABLE queues (
    name text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:-]{1,128}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    paused_at timestamptz,
    resumed_at timestamptz
);
INSERT INTO queues (name) VALUES ('default');
ALTER TABLE jobs ADD COLUMN queue text NOT NULL DEFAULT 'default';
ALTER TABLE job_kinds ADD COLUMN queue text;
COMMENT ON TABLE queues IS 'Known queues (created by the workers that serve them, or ackbox queues create) and whether they are paused.';
COMMENT ON COLUMN jobs.queue IS 'POST /v1/jobs queue, else its kind''s queue (job_kinds.queue), else default.';
COMMENT ON COLUMN job_kinds.queue IS 'The queue a worker that runs this kind puts its jobs in (ACKBOX_KIND_QUEUES); NULL: default.';
GRANT SELECT ON queues TO ackbox_api, ackbox_relay, ackbox_worker;
GRANT INSERT ON queues TO ackbox_worker;
