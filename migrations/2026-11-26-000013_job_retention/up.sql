-- Retention of finished jobs (#16): the relay deletes jobs that finished more than ACKBOX_JOB_RETENTION_SECS ago, in
-- bounded batches, with their dependent rows (outbox rows, Idempotency-Keys), and leaves a compact tombstone, so the
-- id answers "expired" (404, /problems/expired) rather than "never issued" for ACKBOX_TOMBSTONE_RETENTION_SECS more.
CREATE TABLE job_tombstones (
    id         uuid        PRIMARY KEY,
    tenant_id  uuid        NOT NULL,
    expired_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE job_tombstones IS 'Ids of jobs deleted by retention, with their tenant: GET answers 404 /problems/expired for them (to their tenant only) until the tombstone itself is deleted.';
CREATE INDEX job_tombstones_expired_idx ON job_tombstones (expired_at);

-- What retention looks for, oldest first, without reading the live part of the table. (Built inside the migration's
-- transaction, so it blocks writes to jobs while it builds: on a large existing table, create it by hand first with
-- CREATE INDEX CONCURRENTLY under the same name, and this statement is then skipped.)
CREATE INDEX IF NOT EXISTS jobs_finished_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;
-- The keys of deleted jobs go with them.
CREATE INDEX IF NOT EXISTS idempotency_keys_job_idx ON idempotency_keys (job_id);

GRANT SELECT ON job_tombstones TO ackbox_api;
GRANT SELECT, INSERT, DELETE ON job_tombstones TO ackbox_relay;
GRANT DELETE ON jobs TO ackbox_relay;
