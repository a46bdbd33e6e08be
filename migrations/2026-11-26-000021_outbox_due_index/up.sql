-- When the earliest unpublished row is due (the relay's next_due, asked by every round that claims less than a full
-- batch, so by every idle round): with this index the minimum is its first entry; without it the query read the
-- whole table, published history included. Built CONCURRENTLY in its own migration, as migration 17's index is.
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_due_idx ON outbox (available_at) WHERE published_at IS NULL AND dead_at IS NULL;
