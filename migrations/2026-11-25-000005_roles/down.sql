-- Roles are cluster-wide and may serve other databases: revoke this database's grants, keep the roles.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ackbox_api, ackbox_relay, ackbox_worker;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM ackbox_api, ackbox_relay, ackbox_worker;
REVOKE USAGE ON SCHEMA public FROM ackbox_api, ackbox_relay, ackbox_worker;
