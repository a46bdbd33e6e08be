DROP INDEX CONCURRENTLY IF EXISTS idempotency_keys_batch_idx;
