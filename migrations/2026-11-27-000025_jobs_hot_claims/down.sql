ALTER TABLE jobs DROP CONSTRAINT jobs_finished_at_matches_status;
ALTER TABLE jobs RESET (fillfactor);
