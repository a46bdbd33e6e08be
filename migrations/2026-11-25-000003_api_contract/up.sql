-- The complete job API: tenants and API keys, job kinds, idempotency keys, cancellation, listing, long-poll wake-ups.

CREATE TABLE tenants (
    id         uuid        PRIMARY KEY,
    name       text        NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE tenants IS 'Owners of jobs. Every job belongs to one; another tenant''s job is indistinguishable from a missing one.';

CREATE TABLE api_keys (
    id           uuid        PRIMARY KEY,
    tenant_id    uuid        NOT NULL REFERENCES tenants (id),
    prefix       text        NOT NULL UNIQUE,
    key_hash     bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
COMMENT ON TABLE  api_keys IS 'Bearer keys. Only a SHA-256 of each key is stored; the key itself is shown once, at creation.';
COMMENT ON COLUMN api_keys.prefix IS 'The public, non-secret part of the key (ackbox_<prefix>_<secret>), used to find the row.';
COMMENT ON COLUMN api_keys.key_hash IS 'SHA-256 of the whole key, compared in constant time.';
COMMENT ON COLUMN api_keys.revoked_at IS 'Set by `ackbox keys revoke`; a revoked key is refused at once (API caches are invalidated by NOTIFY).';

-- Keys are cached by the API; revoking or creating one tells every API process at once.
CREATE FUNCTION ackbox_notify_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ackbox_keys', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER api_keys_notify AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION ackbox_notify_keys();

-- Jobs that existed before tenants belong to a tenant named 'default'.
INSERT INTO tenants (id, name) VALUES ('00000000-0000-0000-0000-000000000000', 'default');
ALTER TABLE jobs ADD COLUMN tenant_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000' REFERENCES tenants (id);
ALTER TABLE jobs ALTER COLUMN tenant_id DROP DEFAULT;
COMMENT ON COLUMN jobs.tenant_id IS 'Owner. Every API read and write is scoped to it.';
CREATE INDEX jobs_tenant_list_idx ON jobs (tenant_id, id DESC);

ALTER TABLE jobs ADD COLUMN cancel_requested_at timestamptz;
COMMENT ON COLUMN jobs.cancel_requested_at IS 'Set by POST /v1/jobs/{id}/cancel on a running job; the worker''s heartbeat sees it and cancels the attempt, which ends cancelled.';

-- Long-poll wake-ups: one notification per status change, carrying the job id. Progress reports do not notify:
-- a long-poll waits for the status to change, not for every percent.
CREATE FUNCTION ackbox_notify_job_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ackbox_job_status', NEW.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_status_notify AFTER UPDATE OF status ON jobs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION ackbox_notify_job_status();

CREATE TABLE job_kinds (
    kind         text        PRIMARY KEY,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE job_kinds IS 'Kinds some worker can run, upserted by each worker at start-up. POST with a kind not listed here is refused with 422.';

CREATE TABLE idempotency_keys (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    key         text        NOT NULL,
    fingerprint bytea       NOT NULL,
    job_id      uuid        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
COMMENT ON TABLE  idempotency_keys IS 'Idempotency-Key header values (IETF draft semantics), per tenant, written in the same transaction as the job they created.';
COMMENT ON COLUMN idempotency_keys.fingerprint IS 'SHA-256 of the canonical request body; the same key with another body is refused with 422.';
COMMENT ON COLUMN idempotency_keys.expires_at IS 'After this the key may be used again for a new job; expired rows are deleted by the relay''s maintenance.';
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
