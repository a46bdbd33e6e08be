DROP TABLE IF EXISTS job_effects;
DROP INDEX IF EXISTS outbox_published_at_idx;
DROP INDEX IF EXISTS jobs_queued_idx;
ALTER TABLE jobs DROP COLUMN IF EXISTS progress;
