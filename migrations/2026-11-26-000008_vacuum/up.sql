-- Prompt vacuuming of the tables every job churns (#14). Expand only: storage parameters, which take a
-- SHARE UPDATE EXCLUSIVE lock (reads and writes go on).
--
-- Each job leaves dead versions behind: its claim and its completion update `jobs` (neither is a HOT update: `status`
-- is in the partial indexes' predicates), and the relay's mark and retention's delete leave dead `outbox` rows. Until
-- vacuum removes them, their index entries stay: the relay's claim walks every dead entry of
-- `outbox_unpublished_idx`, so it slows down in proportion to the rows published since the last vacuum (measured: 11
-- to 19 ms per claim with 300,000 of them, 0.4 ms after one VACUUM). Postgres's default trigger, 20 % of the table,
-- lets that reach hundreds of thousands of rows on a table that keeps an hour of history; a fixed threshold keeps it
-- to a few seconds' worth. Where autovacuum is off altogether, the relay vacuums these tables itself
-- (ACKBOX_RELAY_VACUUM, relay/README.md).
--
-- vacuum_truncate = false: giving empty trailing pages back to the operating system takes an ACCESS EXCLUSIVE lock
-- on the table, which stalls every submit, claim and mark while vacuum checks the pages; these tables reuse the
-- space soon anyway.
ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000,
                        autovacuum_vacuum_cost_delay = 0, vacuum_truncate = false);
ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 10000,
                      vacuum_truncate = false);
ALTER TABLE idempotency_keys SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000);
