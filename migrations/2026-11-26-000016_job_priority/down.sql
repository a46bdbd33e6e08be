ALTER TABLE outbox DROP COLUMN priority;
ALTER TABLE jobs DROP COLUMN priority;
