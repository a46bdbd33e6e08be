-- #14: replaced by jobs_open_idx (migration 22), so that claims and heartbeats are HOT updates. Outside a transaction
-- and alone in its file, so dropping it never blocks reads or writes of jobs.
--
-- The previous release's rescuer (lease expiry) reads this index; until its relays are replaced, their lease scan
-- reads the table instead: slower, never wrong. Upgrade the relays together with the migration.
DROP INDEX CONCURRENTLY IF EXISTS jobs_running_lease_idx;
