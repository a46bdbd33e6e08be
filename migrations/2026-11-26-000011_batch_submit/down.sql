ALTER TABLE idempotency_keys DROP COLUMN batch_job_ids;
