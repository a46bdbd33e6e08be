DROP INDEX CONCURRENTLY IF EXISTS idempotency_keys_job_idx;
