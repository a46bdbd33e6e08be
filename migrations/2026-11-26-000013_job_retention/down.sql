REVOKE DELETE ON jobs FROM ackbox_relay;
DROP INDEX idempotency_keys_job_idx;
DROP INDEX jobs_finished_idx;
DROP TABLE job_tombstones;
