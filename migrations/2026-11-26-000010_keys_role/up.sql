-- A least-privilege role for `ackbox keys` (create, list, revoke), so that creating the first API key, or any key,
-- no longer needs the schema owner: the compose `bootstrap` service and the k8s bootstrap Job connect as it. It
-- reads and writes tenants and keys, and nothing else: no job, outbox or idempotency row.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ackbox_keys') THEN CREATE ROLE ackbox_keys LOGIN; END IF;
END
$$;
ALTER ROLE ackbox_keys SET statement_timeout = '15s';
ALTER ROLE ackbox_keys SET idle_in_transaction_session_timeout = '30s';
GRANT USAGE ON SCHEMA public TO ackbox_keys;
GRANT SELECT, INSERT ON tenants, api_keys TO ackbox_keys;
GRANT UPDATE (is_admin) ON tenants TO ackbox_keys;
GRANT UPDATE (revoked_at) ON api_keys TO ackbox_keys;
