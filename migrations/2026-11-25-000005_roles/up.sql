-- One least-privilege role per service, with timeouts, so a bug or a compromised process can do only what its
-- service does and can never hold a transaction or a statement forever. Roles are cluster-wide (created once,
-- whatever the number of databases); grants are per database. Passwords are not set here: an operator sets them
-- (ALTER ROLE ackbox_api PASSWORD '...') or uses trust/peer/cert auth. Migrations keep running as the owner.
--
-- Every new table needs its grants here (or in its own migration): a service without them fails its tests, since
-- the e2e stack runs each service as its role.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ackbox_api') THEN CREATE ROLE ackbox_api LOGIN; END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ackbox_relay') THEN CREATE ROLE ackbox_relay LOGIN; END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ackbox_worker') THEN CREATE ROLE ackbox_worker LOGIN; END IF;
END
$$;

-- Timeouts. The relay holds its claiming transaction open while the broker acknowledges the batch (at most
-- ACKBOX_RELAY_DELIVERY_TIMEOUT_MS, 10 s by default), so its idle-in-transaction bound is longer.
ALTER ROLE ackbox_api SET statement_timeout = '15s';
ALTER ROLE ackbox_api SET idle_in_transaction_session_timeout = '30s';
ALTER ROLE ackbox_relay SET statement_timeout = '30s';
ALTER ROLE ackbox_relay SET idle_in_transaction_session_timeout = '60s';
ALTER ROLE ackbox_worker SET statement_timeout = '15s';
ALTER ROLE ackbox_worker SET idle_in_transaction_session_timeout = '30s';

GRANT USAGE ON SCHEMA public TO ackbox_api, ackbox_relay, ackbox_worker;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ackbox_api, ackbox_relay, ackbox_worker;

-- api: accepts jobs (job + outbox + idempotency key), reads and cancels them, authenticates keys, serves the
-- dashboard. It never deletes anything, never writes keys or tenants.
GRANT SELECT ON jobs, outbox, tenants, api_keys, job_kinds, idempotency_keys, outbox_backlog_samples, consumer_lag
    TO ackbox_api;
GRANT INSERT ON jobs, outbox, idempotency_keys TO ackbox_api;
GRANT UPDATE ON jobs, idempotency_keys TO ackbox_api;

-- relay: publishes and trims the outbox, rescues jobs (requeue/fail + a fresh outbox row), expires idempotency
-- keys, samples the backlog. It cannot create jobs or read keys.
GRANT SELECT ON jobs, outbox, idempotency_keys, outbox_backlog_samples TO ackbox_relay;
GRANT INSERT, UPDATE, DELETE ON outbox TO ackbox_relay;
GRANT UPDATE ON jobs TO ackbox_relay;
GRANT DELETE ON idempotency_keys TO ackbox_relay;
GRANT INSERT, DELETE ON outbox_backlog_samples TO ackbox_relay;
-- Lets the relay see other sessions' transaction ages (the long-transaction gauge).
GRANT pg_read_all_stats TO ackbox_relay;

-- worker: claims and finishes jobs, retries them (a fresh outbox row), records effects, registers its kinds and
-- reports its lag. It cannot create jobs, read keys or delete anything.
GRANT SELECT ON jobs, job_kinds, consumer_lag TO ackbox_worker;
GRANT UPDATE ON jobs TO ackbox_worker;
GRANT INSERT ON outbox, job_effects TO ackbox_worker;
GRANT INSERT, UPDATE ON job_kinds, consumer_lag TO ackbox_worker;
