-- What job retention (migration 13) looks for, oldest first, without reading the live part of the table, built
-- without blocking writes. Outside a transaction (metadata.toml), and alone in its file: Postgres runs the
-- statements of one multi-statement string in an implicit transaction, where CONCURRENTLY is refused. IF NOT
-- EXISTS makes a re-run safe; an interrupted build leaves an INVALID index of this name, to drop before re-running.
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_finished_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;
