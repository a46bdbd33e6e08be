//! Retention of finished jobs: deleted in bounded batches with their dependent rows, each leaving a tombstone so its
//! id answers "expired" instead of "never issued" for a while longer.
//!
//! A job is deleted once it finished (succeeded, failed or cancelled) more than the retention ago and nothing still
//! needs it: no live Idempotency-Key names it (a retry under the key must get this job back, not make a new one; a
//! batch key names all its jobs) and no completion callback of it is still being delivered. Queued and running jobs
//! are never touched, whatever their age. With it go its outbox rows and its expired keys. Several relays may run
//! this at once: `FOR UPDATE SKIP LOCKED` gives each its own rows.
//!
//! A job kept by a live key is read again by every pass until the key expires, so a retention much shorter than the
//! api's Idempotency-Key lifetime, with keys on most submits, makes each pass read past those jobs (an index probe
//! each); the relay's README says to keep the retention at or above the lifetime in that case.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Uuid as SqlUuid};
use uuid::Uuid;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The statement of [`delete_finished_jobs`]: `$1` the retention in milliseconds, `$2` the most jobs it deletes. Public
/// so a test can read its plan.
///
/// "Nothing names it" is written as counts, not `NOT EXISTS`: Postgres turns `NOT EXISTS` into an anti join and may
/// hash the whole key table for it (every live key, a day's submits) on each statement. A count (at most one key, a
/// few callbacks) stays an index probe per job examined; `LIMIT 1` would not, as the planner then expects a
/// sequential scan to find a batch member early.
pub const DELETE_FINISHED_JOBS: &str = "WITH doomed AS (
         SELECT j.id FROM jobs j
          WHERE j.finished_at < now() - $1 * interval '1 millisecond'
            AND j.status IN ('succeeded', 'failed', 'cancelled')
            AND (SELECT count(*) FROM idempotency_keys k WHERE k.job_id = j.id AND k.expires_at > now()) = 0
            AND (SELECT count(*) FROM idempotency_keys k
                  WHERE k.batch_job_ids @> ARRAY[j.id] AND k.batch_job_ids IS NOT NULL AND k.expires_at > now()) = 0
            AND (SELECT count(*) FROM callbacks c WHERE c.job_id = j.id) = 0
          ORDER BY j.finished_at
          LIMIT $2
            FOR UPDATE OF j SKIP LOCKED),
     gone AS (DELETE FROM jobs WHERE id IN (SELECT id FROM doomed) RETURNING id, tenant_id),
     tombstones AS (
         INSERT INTO job_tombstones (id, tenant_id) SELECT id, tenant_id FROM gone ON CONFLICT (id) DO NOTHING),
     dispatches AS (DELETE FROM outbox WHERE aggregate_id IN (SELECT id FROM gone)),
     keys AS (DELETE FROM idempotency_keys WHERE job_id IN (SELECT id FROM gone)),
     callbacks AS (DELETE FROM callbacks WHERE job_id IN (SELECT id FROM gone))
     SELECT count(*) AS n FROM gone";

/// Deletes up to `limit` jobs that finished more than `older_than` ago and that no live Idempotency-Key and no
/// undelivered callback names, with their outbox rows and expired keys, and writes their tombstones, in one
/// statement. Returns how many jobs it deleted.
pub fn delete_finished_jobs(conn: &mut PgConnection, older_than: Duration, limit: i64) -> QueryResult<usize> {
    let deleted: Count = diesel::sql_query(DELETE_FINISHED_JOBS)
        .bind::<Double, _>(older_than.as_secs_f64() * 1000.0)
        .bind::<BigInt, _>(limit)
        .get_result(conn)?;
    Ok(usize::try_from(deleted.n).unwrap_or(0))
}

/// Deletes up to `limit` tombstones older than `older_than`; after that an id is a plain "not found". Returns how
/// many.
pub fn delete_old_tombstones(conn: &mut PgConnection, older_than: Duration, limit: i64) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM job_tombstones WHERE id IN (
             SELECT id FROM job_tombstones WHERE expired_at < now() - $1 * interval '1 millisecond'
              ORDER BY expired_at LIMIT $2)",
    )
    .bind::<Double, _>(older_than.as_secs_f64() * 1000.0)
    .bind::<BigInt, _>(limit)
    .execute(conn)
}

/// Whether `id` was a job of `tenant_id` that retention deleted (false for another tenant's, exactly like an id never
/// issued).
pub fn expired(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        found: bool,
    }
    let row: Found =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM job_tombstones WHERE id = $1 AND tenant_id = $2) AS found")
            .bind::<SqlUuid, _>(id)
            .bind::<SqlUuid, _>(tenant_id)
            .get_result(conn)?;
    Ok(row.found)
}
