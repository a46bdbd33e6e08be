REVOKE SELECT ON job_kinds FROM ackbox_relay;
