-- Jobs are the source of truth; the outbox is how they reach Kafka. Both are written in one transaction by the API.

CREATE TABLE jobs (
    id               uuid        PRIMARY KEY,
    kind             text        NOT NULL CHECK (length(kind) BETWEEN 1 AND 128),
    payload          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status           text        NOT NULL DEFAULT 'queued'
                                 CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     integer     NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    result           jsonb,
    error            jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    not_before       timestamptz,
    lease_expires_at timestamptz
);

COMMENT ON TABLE  jobs IS 'One row per accepted job. Written before the API answers 202; the only place status lives.';
COMMENT ON COLUMN jobs.id IS 'UUIDv7 handed to the client in the 202; time-ordered, so inserts stay at the right edge of the index.';
COMMENT ON COLUMN jobs.kind IS 'Handler name the worker looks up in its registry (noop, echo, sleep, fail, ...).';
COMMENT ON COLUMN jobs.payload IS 'Client-supplied input for the handler. Never copied into Kafka messages or logs.';
COMMENT ON COLUMN jobs.status IS 'queued -> running -> succeeded | failed | cancelled; running -> queued on a retry. Written only by shared::state.';
COMMENT ON COLUMN jobs.attempts IS 'Number of attempts started. Also the fencing token: a status write names the attempt it belongs to.';
COMMENT ON COLUMN jobs.max_attempts IS 'Attempts allowed before the job ends failed.';
COMMENT ON COLUMN jobs.result IS 'Handler output once succeeded.';
COMMENT ON COLUMN jobs.error IS 'Last failure as {"code", "message"}; kept on the failed job, cleared when a later attempt succeeds.';
COMMENT ON COLUMN jobs.created_at IS 'When the API committed the job (= when the 202 became possible).';
COMMENT ON COLUMN jobs.updated_at IS 'Last status write.';
COMMENT ON COLUMN jobs.started_at IS 'When the latest attempt was claimed by a worker.';
COMMENT ON COLUMN jobs.finished_at IS 'When the job reached a terminal status.';
COMMENT ON COLUMN jobs.not_before IS 'A queued job is not claimed before this time (retry backoff).';
COMMENT ON COLUMN jobs.lease_expires_at IS 'While running: the worker must finish or extend by then, or the rescuer takes the job back.';

CREATE INDEX jobs_running_lease_idx ON jobs (lease_expires_at) WHERE status = 'running';

CREATE TABLE outbox (
    id           bigserial   PRIMARY KEY,
    aggregate_id uuid        NOT NULL,
    topic        text        NOT NULL,
    key          text        NOT NULL,
    payload      jsonb       NOT NULL,
    headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    available_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text
);

COMMENT ON TABLE  outbox IS 'Messages waiting to be (or recently) produced to Kafka by ackbox-relay. Insert-only for writers; the relay only sets published_at/attempts/last_error.';
COMMENT ON COLUMN outbox.id IS 'Insertion order. The relay claims by state (published_at IS NULL), never by reading past a cursor, so a late commit is never skipped.';
COMMENT ON COLUMN outbox.aggregate_id IS 'The job this message dispatches (jobs.id). Not a foreign key, so retention can run independently.';
COMMENT ON COLUMN outbox.topic IS 'Kafka topic to produce to.';
COMMENT ON COLUMN outbox.key IS 'Kafka message key (the job id), so all messages of one job land in one partition, in order.';
COMMENT ON COLUMN outbox.payload IS 'The message envelope (shared::envelope), produced as the Kafka value. Carries ids only, no job payload.';
COMMENT ON COLUMN outbox.headers IS 'Kafka headers as a flat JSON object of strings.';
COMMENT ON COLUMN outbox.created_at IS 'When the row was committed.';
COMMENT ON COLUMN outbox.available_at IS 'Not produced before this time: retry backoff of the job, or of the row after a failed delivery.';
COMMENT ON COLUMN outbox.published_at IS 'NULL until the broker acknowledged the message; then when it did.';
COMMENT ON COLUMN outbox.attempts IS 'Delivery attempts made by the relay.';
COMMENT ON COLUMN outbox.last_error IS 'Error of the last failed delivery attempt, if any.';

-- The relay's claim query reads only this index: it stays small however many published rows await retention.
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_aggregate_idx ON outbox (aggregate_id);

-- Wake relays on every insert, from the API, a retry or an operator alike. One notification per statement; Postgres
-- folds identical notifications within a transaction, so this costs nothing per row.
CREATE FUNCTION ackbox_notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ackbox_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION ackbox_notify_outbox();
