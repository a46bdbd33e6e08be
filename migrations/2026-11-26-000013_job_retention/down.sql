REVOKE DELETE ON jobs FROM ackbox_relay;
DROP TABLE job_tombstones;
