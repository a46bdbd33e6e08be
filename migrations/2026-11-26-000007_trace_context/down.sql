ALTER TABLE jobs DROP COLUMN tracestate;
ALTER TABLE jobs DROP COLUMN traceparent;
