-- The relay's rescuer reads job_kinds since migration 6 (a job skipped for lack of a handler is dispatched again as
-- soon as a worker that runs its kind registers), but the ackbox_relay role (migration 5) was never granted it: as
-- that role, every stale-dispatch pass failed with "permission denied for table job_kinds" and was retried in vain,
-- so lost dispatches were never sent again. Found by relay/tests/relay/vacuum.rs, which runs a maintenance pass as
-- ackbox_relay; shared/db/tests/roles.rs now runs the rescuer as that role.
GRANT SELECT ON job_kinds TO ackbox_relay;
