-- #14: room for HOT updates. A HOT update must fit its new version on the old one's page; a page filled to the brim
-- by inserts has none, so a claim there writes its index entries after all. A worker claims a backlog a few hundred
-- consecutive jobs at a time, whole pages at once, so each page needs room for a new version of every job on it:
-- inserts now stop at half a page. It applies to pages filled from now on. The cost is space: a page holds half as
-- many queued jobs. Measured on this machine (bench/findings.md, session 13): of 100,000 claims in batches of 512,
-- 2.6 % were HOT at fillfactor 100, 26 % at 80, 42 % at 70, 63 % at 60 and 90 % at 50, and claiming and completing
-- them took 3.5 s at 100 and 3.0 s at 50.
ALTER TABLE jobs SET (fillfactor = 50);

-- What jobs_open_idx (migration 22) relies on: a job has finished_at exactly when it is finished. Every transition
-- in ackbox_db::state keeps this; the constraint makes a write that would break it fail, instead of hiding a live job
-- from the rescuer. NOT VALID: checked on every write from now on, without scanning the table (rows written before
-- already keep it).
ALTER TABLE jobs ADD CONSTRAINT jobs_finished_at_matches_status
    CHECK ((finished_at IS NULL) = (status = 'queued' OR status = 'running')) NOT VALID;
