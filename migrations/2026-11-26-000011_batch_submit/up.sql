-- POST /v1/jobs/batch: an Idempotency-Key can stand for a whole batch. Its row keeps the batch's job ids, in order,
-- so a retry gets the same ids back. Expand-only (a nullable column): old api processes ignore it.
ALTER TABLE idempotency_keys ADD COLUMN batch_job_ids uuid[];
COMMENT ON COLUMN idempotency_keys.batch_job_ids IS 'For a key used with POST /v1/jobs/batch: every job id of the batch, in request order (job_id is the first). NULL for a single submit.';
