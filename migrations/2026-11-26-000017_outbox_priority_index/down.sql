DROP INDEX CONCURRENTLY IF EXISTS outbox_unpublished_priority_idx;
