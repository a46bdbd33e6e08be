REVOKE ALL ON tenants, api_keys FROM ackbox_keys;
REVOKE USAGE ON SCHEMA public FROM ackbox_keys;
