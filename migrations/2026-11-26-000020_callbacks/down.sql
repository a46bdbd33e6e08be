DROP TRIGGER IF EXISTS jobs_enqueue_callback ON jobs;
DROP FUNCTION IF EXISTS ackbox_enqueue_callback();
DROP TABLE IF EXISTS callbacks;
ALTER TABLE tenants DROP COLUMN IF EXISTS callback_secret;
ALTER TABLE jobs DROP COLUMN IF EXISTS callback_last_error;
ALTER TABLE jobs DROP COLUMN IF EXISTS callback_attempts;
ALTER TABLE jobs DROP COLUMN IF EXISTS callback_state;
ALTER TABLE jobs DROP COLUMN IF EXISTS callback_url;
