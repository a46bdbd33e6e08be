//! The `idempotency_keys` table (IETF Idempotency-Key draft semantics), used inside the submit transaction.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::idempotency_keys;

/// What a key says about a submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key is new (or its previous use expired): go ahead and create `job_id`.
    Fresh,
    /// The key was used for the same request: return this job.
    Replay(Uuid),
    /// The key was used for a different request body.
    Mismatch,
}

/// Claims `key` for `job_id` inside the caller's transaction. A concurrent claim of the same key blocks on the
/// unique index until the first transaction ends, then sees its row: so 50 simultaneous requests with one key create
/// exactly one job, and the other 49 get that job back.
pub fn claim(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    key: &str,
    fingerprint: &[u8],
    job_id: Uuid,
    expires_at: DateTime<Utc>,
) -> QueryResult<Claim> {
    #[derive(QueryableByName)]
    struct Row {
        // Only whether a row came back matters; the column is read to give the struct a shape.
        #[allow(dead_code)]
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        job_id: Uuid,
    }
    // Insert, or take over an expired row; a live row makes this return nothing.
    let inserted: Option<Row> = diesel::sql_query(
        "INSERT INTO idempotency_keys (tenant_id, key, fingerprint, job_id, expires_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, key) DO UPDATE
            SET fingerprint = EXCLUDED.fingerprint, job_id = EXCLUDED.job_id,
                created_at = now(), expires_at = EXCLUDED.expires_at
          WHERE idempotency_keys.expires_at <= now()
      RETURNING job_id",
    )
    .bind::<diesel::sql_types::Uuid, _>(tenant_id)
    .bind::<diesel::sql_types::Text, _>(key)
    .bind::<diesel::sql_types::Bytea, _>(fingerprint)
    .bind::<diesel::sql_types::Uuid, _>(job_id)
    .bind::<diesel::sql_types::Timestamptz, _>(expires_at)
    .get_result(conn)
    .optional()?;
    if inserted.is_some() {
        return Ok(Claim::Fresh);
    }
    let (stored_fp, stored_job): (Vec<u8>, Uuid) = idempotency_keys::table
        .find((tenant_id, key))
        .select((idempotency_keys::fingerprint, idempotency_keys::job_id))
        .first(conn)?;
    Ok(if stored_fp == fingerprint { Claim::Replay(stored_job) } else { Claim::Mismatch })
}

/// Records the ids of the batch a freshly claimed key stands for (in the claiming transaction).
pub fn set_batch(conn: &mut PgConnection, tenant_id: Uuid, key: &str, job_ids: &[Uuid]) -> QueryResult<()> {
    diesel::update(idempotency_keys::table.find((tenant_id, key)))
        .set(idempotency_keys::batch_job_ids.eq(job_ids))
        .execute(conn)
        .map(|_| ())
}

/// The ids of the batch a key stands for (`None` for a single submit's key).
pub fn batch(conn: &mut PgConnection, tenant_id: Uuid, key: &str) -> QueryResult<Option<Vec<Uuid>>> {
    Ok(idempotency_keys::table
        .find((tenant_id, key))
        .select(idempotency_keys::batch_job_ids)
        .first::<Option<Vec<Uuid>>>(conn)
        .optional()?
        .flatten())
}

/// Deletes up to `limit` expired keys; returns how many.
pub fn delete_expired(conn: &mut PgConnection, limit: i64) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM idempotency_keys WHERE (tenant_id, key) IN (
             SELECT tenant_id, key FROM idempotency_keys WHERE expires_at <= now() ORDER BY expires_at LIMIT $1)",
    )
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .execute(conn)
}
