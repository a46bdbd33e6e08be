-- What operators look at over time: the outbox backlog (sampled by the relay's maintenance, one row per stats
-- interval, trimmed after a day) and the consumer lag each worker last saw (one row per group and partition,
-- upserted from librdkafka's statistics). Both feed the dashboard and `ackbox outbox stats`.

CREATE TABLE outbox_backlog_samples (
    id              bigint           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz      NOT NULL DEFAULT now(),
    unpublished     bigint           NOT NULL,
    oldest_age_secs double precision NOT NULL
);
CREATE INDEX outbox_backlog_samples_at_idx ON outbox_backlog_samples (at);

CREATE TABLE consumer_lag (
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    lag         bigint      NOT NULL,
    reported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- Keys of an admin tenant open the dashboard (`ackbox keys create --tenant ops --admin`).
ALTER TABLE tenants ADD COLUMN is_admin boolean NOT NULL DEFAULT false;
