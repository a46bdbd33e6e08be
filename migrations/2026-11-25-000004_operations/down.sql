ALTER TABLE tenants DROP COLUMN is_admin;
DROP TABLE consumer_lag;
DROP TABLE outbox_backlog_samples;
