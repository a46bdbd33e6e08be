DROP TRIGGER jobs_cancel_notify ON jobs;
DROP FUNCTION ackbox_notify_job_cancel();
ALTER TABLE outbox DROP COLUMN dead_at;
ALTER TABLE job_kinds DROP COLUMN registered_at;
ALTER TABLE jobs DROP COLUMN dispatch_skipped_at;
ALTER TABLE jobs DROP COLUMN redispatches;
ALTER TABLE jobs DROP COLUMN last_dispatched_at;
