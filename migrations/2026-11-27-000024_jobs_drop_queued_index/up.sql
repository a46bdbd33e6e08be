-- #14: replaced by jobs_open_idx (migration 22), so that claims are HOT updates. Outside a transaction and alone in
-- its file, so dropping it never blocks reads or writes of jobs.
--
-- The previous release's stale-dispatch rescue and job counts read this index; until its relays and apis are
-- replaced, those read the table instead: slower, never wrong.
DROP INDEX CONCURRENTLY IF EXISTS jobs_queued_idx;
