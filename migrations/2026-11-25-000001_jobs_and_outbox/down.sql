DROP TRIGGER IF EXISTS outbox_notify ON outbox;
DROP FUNCTION IF EXISTS ackbox_notify_outbox();
DROP TABLE IF EXISTS outbox;
DROP TABLE IF EXISTS jobs;
