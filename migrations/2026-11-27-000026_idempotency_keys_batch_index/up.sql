-- #14: job retention keeps a finished job while a live Idempotency-Key still names it (a retry under that key must
-- get the same job back, not a new one). A single submit's key names its job in `job_id` (idempotency_keys_job_idx,
-- migration 15); a batch key names its first job there and every job of the batch in `batch_job_ids`, which this
-- index serves (`batch_job_ids @> ARRAY[id]`). Only batch keys have the array, so only they are indexed.
--
-- Outside a transaction (metadata.toml) and alone in its file, as migration 14 explains.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idempotency_keys_batch_idx ON idempotency_keys USING gin (batch_job_ids)
    WHERE batch_job_ids IS NOT NULL;
