-- Attempt history (#16): one entry per finished attempt, appended by the same UPDATE that records its outcome (so
-- no extra row, index entry or round trip on the drain path): {"attempt", "started_at", "finished_at", "outcome"
-- (succeeded | failed | cancelled | lease_expired), "error" ({"code", "message"} or null)}. Bounded by the attempts a
-- job may have. Expand-only: a nullable column the previous release neither writes nor reads (its attempts are not
-- recorded until it is replaced).
ALTER TABLE jobs ADD COLUMN history jsonb;
COMMENT ON COLUMN jobs.history IS 'Finished attempts, oldest first: [{attempt, started_at, finished_at, outcome, error}]. NULL: none finished yet.';
