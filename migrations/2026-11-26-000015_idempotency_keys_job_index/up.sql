-- The Idempotency-Keys of a job retention deletes go with it: found by job. Built as migration 14's index is.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idempotency_keys_job_idx ON idempotency_keys (job_id);
