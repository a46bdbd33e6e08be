CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_running_lease_idx ON jobs (lease_expires_at) WHERE status = 'running';
