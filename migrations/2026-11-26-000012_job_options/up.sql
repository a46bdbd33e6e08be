-- Per-job options of POST /v1/jobs (#16): a handler timeout of the job's own. (Scheduling, run_at / delay_ms, uses
-- the existing not_before, with the first dispatch's outbox row due at the same time.) Expand-only: a nullable
-- column, which old workers ignore (they apply their ACKBOX_JOB_TIMEOUT_MS, as before).
ALTER TABLE jobs ADD COLUMN timeout_ms integer;
-- NOT VALID: checked for every new row without scanning (and locking) the existing ones, which are all NULL.
ALTER TABLE jobs ADD CONSTRAINT jobs_timeout_ms_positive CHECK (timeout_ms IS NULL OR timeout_ms > 0) NOT VALID;
COMMENT ON COLUMN jobs.timeout_ms IS 'The handler timeout the submitter asked for (POST /v1/jobs timeout_ms); NULL: the worker''s ACKBOX_JOB_TIMEOUT_MS.';
COMMENT ON COLUMN jobs.not_before IS 'A queued job is not claimed before this time: its run_at or delay_ms, or a retry''s backoff.';
