CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_queued_idx ON jobs (created_at) WHERE status = 'queued';
