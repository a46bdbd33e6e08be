-- W3C trace context (#15). Expand only: two nullable columns, so the previous release keeps running while this is
-- applied (see migrations/README.md).

-- The submit's trace context, copied into the headers of every outbox row of the job (first dispatch, retries,
-- rescues, replays), so the worker's span joins the trace of the request that submitted it.
ALTER TABLE jobs ADD COLUMN traceparent text;
ALTER TABLE jobs ADD COLUMN tracestate text;
COMMENT ON COLUMN jobs.traceparent IS 'W3C traceparent of the submit span (NULL for jobs accepted before migration 7).';
COMMENT ON COLUMN jobs.tracestate IS 'W3C tracestate that came with the submit, passed along untouched.';
