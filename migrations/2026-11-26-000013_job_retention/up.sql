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

-- Its indexes on jobs and idempotency_keys are built CONCURRENTLY by migrations 14 and 15.

GRANT SELECT ON job_tombstones TO ackbox_api;
GRANT SELECT, INSERT, DELETE ON job_tombstones TO ackbox_relay;
GRANT DELETE ON jobs TO ackbox_relay;
