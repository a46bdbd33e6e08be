-- Job priority (#16): low 0, normal 1 (the default), high 2. The job keeps it for every dispatch; each outbox row
-- carries it too, so the relay publishes due rows highest first and onto the level's topic (see
-- shared/types/src/priority.rs). Expand-only: columns with a constant default (no table rewrite), which the previous
-- release neither writes nor reads: its rows are all normal, as they were.
ALTER TABLE jobs ADD COLUMN priority smallint NOT NULL DEFAULT 1;
ALTER TABLE outbox ADD COLUMN priority smallint NOT NULL DEFAULT 1;
-- NOT VALID: checked for every new row without scanning (and locking) the existing ones, which all hold the default.
ALTER TABLE jobs ADD CONSTRAINT jobs_priority_level CHECK (priority BETWEEN 0 AND 2) NOT VALID;
ALTER TABLE outbox ADD CONSTRAINT outbox_priority_level CHECK (priority BETWEEN 0 AND 2) NOT VALID;
COMMENT ON COLUMN jobs.priority IS 'POST /v1/jobs priority: 0 low, 1 normal, 2 high. Chooses the Kafka topic of each dispatch (ACKBOX_TOPIC, .high, .low).';
COMMENT ON COLUMN outbox.priority IS 'The job''s priority when the row was written: the relay publishes due rows highest first, onto the level''s topic.';
