//! Completion callbacks (migration 20): when a job with a `callback_url` ends, the trigger `jobs_enqueue_callback`
//! writes a `callbacks` row in the same transaction as the final status. The api's deliverer claims due rows with a
//! lease, POSTs the status document, and records the outcome here: delivered (the row goes), failed for now (the row
//! waits out its backoff) or given up (the row goes, the job says `failed`).
//!
//! Every outcome is fenced by the claim's attempt number, so a deliverer whose lease ran out (a stalled process, one
//! killed mid-send whose successor already sent it) cannot overwrite a newer outcome. The job's `callback_*` columns
//! describe its latest end only: an outcome of an older end's callback (the job was retried and ended again) leaves
//! them alone.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Int4, Nullable, Text};
use uuid::Uuid;

/// A callback claimed for one delivery attempt.
#[derive(Debug, Clone, QueryableByName)]
pub struct Due {
    /// The row, also the delivery's stable id (`webhook-id`): the same on every retry of this end's callback.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// The job.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub job_id: Uuid,
    /// Where to POST.
    #[diesel(sql_type = Text)]
    pub url: String,
    /// This attempt's number (1 for the first): the fence of its outcome.
    #[diesel(sql_type = Int4)]
    pub attempt: i32,
}

/// Claims up to `limit` due callbacks for `lease`: nobody else takes them until it runs out, and then anybody may
/// (at-least-once: a deliverer killed mid-send is replaced once its lease lapses).
pub fn claim(conn: &mut PgConnection, limit: i64, lease: Duration) -> QueryResult<Vec<Due>> {
    diesel::sql_query(
        "UPDATE callbacks
            SET leased_until = now() + $2 * interval '1 millisecond', attempts = attempts + 1
          WHERE id IN (SELECT id FROM callbacks
                        WHERE available_at <= now() AND (leased_until IS NULL OR leased_until < now())
                        ORDER BY available_at LIMIT $1 FOR UPDATE SKIP LOCKED)
      RETURNING id, job_id, url, attempts AS attempt",
    )
    .bind::<BigInt, _>(limit)
    .bind::<Double, _>(lease.as_secs_f64() * 1000.0)
    .load(conn)
}

/// The part of both outcome statements that records on the job, unless a newer end's callback exists.
const RECORD_ON_JOB: &str = "UPDATE jobs
        SET callback_state = $3, callback_attempts = $2, callback_last_error = $4
      WHERE id IN (SELECT job_id FROM done)
        AND NOT EXISTS (SELECT 1 FROM callbacks n WHERE n.job_id = jobs.id AND n.id > $1)";

/// Records that attempt `attempt` of callback `id` was delivered. Returns false when the claim was overtaken (the
/// lease ran out and another attempt took the row): nothing is written then.
pub fn delivered(conn: &mut PgConnection, id: i64, attempt: i32) -> QueryResult<bool> {
    let n = diesel::sql_query(format!(
        "WITH done AS (DELETE FROM callbacks WHERE id = $1 AND attempts = $2 RETURNING job_id) {RECORD_ON_JOB}"
    ))
    .bind::<BigInt, _>(id)
    .bind::<Int4, _>(attempt)
    .bind::<Text, _>("delivered")
    .bind::<Nullable<Text>, _>(None::<String>)
    .execute(conn)?;
    // The job's row may be gone (retention) or newer: the claim is what must still hold.
    Ok(n > 0 || still_gone(conn, id)?)
}

/// Whether row `id` is gone: after `delivered`/`failed` updated no job, tells "done" from "overtaken".
fn still_gone(conn: &mut PgConnection, id: i64) -> QueryResult<bool> {
    use crate::schema::callbacks;
    Ok(callbacks::table.find(id).select(callbacks::id).first::<i64>(conn).optional()?.is_none())
}

/// Records that attempt `attempt` of callback `id` failed with `error`: it is tried again after `retry_in`, or, with
/// `None`, given up (the row goes and the job's `callback_state` says `failed`).
pub fn failed(
    conn: &mut PgConnection,
    id: i64,
    attempt: i32,
    error: &str,
    retry_in: Option<Duration>,
) -> QueryResult<()> {
    let (done, state) = match retry_in {
        Some(_) => (
            "UPDATE callbacks SET available_at = now() + $5 * interval '1 millisecond', leased_until = NULL,
                    last_error = $4
              WHERE id = $1 AND attempts = $2 RETURNING job_id",
            "pending",
        ),
        None => ("DELETE FROM callbacks WHERE id = $1 AND attempts = $2 RETURNING job_id", "failed"),
    };
    diesel::sql_query(format!("WITH done AS ({done}) {RECORD_ON_JOB}"))
        .bind::<BigInt, _>(id)
        .bind::<Int4, _>(attempt)
        .bind::<Text, _>(state)
        .bind::<Nullable<Text>, _>(Some(error))
        .bind::<Double, _>(retry_in.unwrap_or_default().as_secs_f64() * 1000.0)
        .execute(conn)?;
    Ok(())
}

/// Drops callback `id` whose job no longer exists (deleted by retention meanwhile).
pub fn discard(conn: &mut PgConnection, id: i64) -> QueryResult<()> {
    use crate::schema::callbacks;
    diesel::delete(callbacks::table.find(id)).execute(conn)?;
    Ok(())
}

/// The tenant's signing secret, made from `fresh` and stored at first use (by whichever caller comes first, so all
/// agree). `None` for an unknown tenant.
pub fn secret(conn: &mut PgConnection, tenant_id: Uuid, fresh: &str) -> QueryResult<Option<String>> {
    use crate::schema::tenants;
    let stored: Option<Option<String>> =
        tenants::table.find(tenant_id).select(tenants::callback_secret).first(conn).optional()?;
    match stored {
        None => Ok(None),
        Some(Some(secret)) => Ok(Some(secret)),
        Some(None) => {
            #[derive(QueryableByName)]
            struct Secret {
                #[diesel(sql_type = Text)]
                callback_secret: String,
            }
            let made: Option<Secret> = diesel::sql_query(
                "UPDATE tenants SET callback_secret = coalesce(callback_secret, $2) WHERE id = $1
                 RETURNING callback_secret",
            )
            .bind::<diesel::sql_types::Uuid, _>(tenant_id)
            .bind::<Text, _>(fresh)
            .get_result(conn)
            .optional()?;
            Ok(made.map(|s| s.callback_secret))
        }
    }
}
