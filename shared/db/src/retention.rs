//! Retention of finished jobs: deleted in bounded batches with their dependent rows, each leaving a tombstone so its
//! id answers "expired" instead of "never issued" for a while longer.
//!
//! A job is deleted once it finished (succeeded, failed or cancelled) more than the retention ago; queued and running
//! jobs are never touched, whatever their age. With it go its outbox rows and the Idempotency-Keys that point at it
//! (a key outliving its job would replay a job that no longer exists). Several relays may run this at once: `FOR
//! UPDATE SKIP LOCKED` gives each its own rows.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Uuid as SqlUuid};
use uuid::Uuid;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Deletes up to `limit` jobs that finished more than `older_than` ago, with their outbox rows, Idempotency-Keys and
/// undelivered callbacks,
/// and writes their tombstones, in one statement. Returns how many jobs it deleted.
pub fn delete_finished_jobs(conn: &mut PgConnection, older_than: Duration, limit: i64) -> QueryResult<usize> {
    let deleted: Count = diesel::sql_query(
        "WITH doomed AS (
             SELECT id FROM jobs
              WHERE finished_at < now() - $1 * interval '1 millisecond'
                AND status IN ('succeeded', 'failed', 'cancelled')
              ORDER BY finished_at
              LIMIT $2
                FOR UPDATE SKIP LOCKED),
         gone AS (DELETE FROM jobs WHERE id IN (SELECT id FROM doomed) RETURNING id, tenant_id),
         tombstones AS (
             INSERT INTO job_tombstones (id, tenant_id) SELECT id, tenant_id FROM gone ON CONFLICT (id) DO NOTHING),
         dispatches AS (DELETE FROM outbox WHERE aggregate_id IN (SELECT id FROM gone)),
         keys AS (DELETE FROM idempotency_keys WHERE job_id IN (SELECT id FROM gone)),
         callbacks AS (DELETE FROM callbacks WHERE job_id IN (SELECT id FROM gone))
         SELECT count(*) AS n FROM gone",
    )
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
