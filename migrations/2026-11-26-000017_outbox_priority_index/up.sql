-- The relay claims due rows highest priority first (ORDER BY priority DESC, id): this index serves that order as
-- outbox_unpublished_idx served ORDER BY id. Built as migration 14's index is.
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_unpublished_priority_idx ON outbox (priority DESC, id) WHERE published_at IS NULL;
