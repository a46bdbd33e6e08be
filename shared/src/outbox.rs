//! All SQL that touches the `outbox` table, in one place.
//!
//! Writers only insert ([`enqueue`]), always on the caller's connection so the row commits or rolls back together
//! with the job change that caused it. The relay claims unpublished rows by *state* under `FOR UPDATE SKIP LOCKED`
//! ([`claim_batch`]), never by reading past a cursor: a transaction that took a low id but committed late is still
//! picked up, and several relays never block each other.

use chrono::{DateTime, Utc};
use diesel::dsl::now;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};
use uuid::Uuid;

use crate::envelope::Envelope;
use crate::models::{NewOutboxMessage, OutboxMessage};
use crate::schema::outbox;

/// Longest delivery backoff after repeated failures: 2^6 s.
pub const MAX_BACKOFF_EXPONENT: i32 = 6;

/// Inserts the dispatch message for `envelope` into the outbox. Call it inside the transaction that changed the job.
pub fn enqueue(
    conn: &mut PgConnection,
    topic: &str,
    envelope: &Envelope,
    available_at: Option<DateTime<Utc>>,
) -> QueryResult<()> {
    let row = NewOutboxMessage {
        aggregate_id: envelope.job_id,
        topic: topic.to_string(),
        key: envelope.job_id.to_string(),
        payload: envelope.to_json(),
        headers: serde_json::json!({
            "content-type": "application/json",
            "ackbox-kind": envelope.kind,
            "ackbox-attempt": envelope.attempt.to_string(),
        }),
        available_at,
    };
    diesel::insert_into(outbox::table).values(&row).execute(conn).map(|_| ())
}

/// Locks up to `limit` unpublished rows that are due, oldest first, skipping rows another relay holds. The locks last
/// until the caller's transaction ends, so call it inside one and mark the rows before committing.
pub fn claim_batch(conn: &mut PgConnection, limit: i64) -> QueryResult<Vec<OutboxMessage>> {
    outbox::table
        .filter(outbox::published_at.is_null())
        .filter(outbox::available_at.le(now))
        .order(outbox::id)
        .limit(limit)
        .for_update()
        .skip_locked()
        .select(OutboxMessage::as_select())
        .load(conn)
}

/// Marks rows as delivered, in one statement.
pub fn mark_published(conn: &mut PgConnection, ids: &[i64]) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
        .set((
            // The acknowledgement time, not the (earlier) start of the claiming transaction that now() would give.
            outbox::published_at.eq(diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>>(
                "clock_timestamp()",
            )),
            outbox::attempts.eq(outbox::attempts + 1),
            outbox::last_error.eq(None::<String>),
        ))
        .execute(conn)
}

/// Records failed deliveries in one statement: bumps `attempts`, keeps the error, and pushes `available_at` out by an
/// exponential backoff with ±25 % jitter from the moment of failure (`clock_timestamp()`: the claiming
/// transaction began a whole delivery timeout earlier) (1 s, 2 s, … capped at 2^[`MAX_BACKOFF_EXPONENT`] s). The rows stay
/// unpublished, so they are retried, and the claim query skips them until due, so they never block newer rows.
pub fn mark_failed(conn: &mut PgConnection, failures: &[(i64, String)]) -> QueryResult<usize> {
    if failures.is_empty() {
        return Ok(0);
    }
    let (ids, errors): (Vec<i64>, Vec<String>) = failures.iter().cloned().unzip();
    diesel::sql_query(format!(
        "UPDATE outbox o
            SET attempts = o.attempts + 1,
                last_error = f.err,
                available_at = clock_timestamp() + interval '1 second' * power(2, least(o.attempts, {MAX_BACKOFF_EXPONENT}))
                                                          * (0.75 + random() * 0.5)
           FROM unnest($1::bigint[], $2::text[]) AS f(id, err)
          WHERE o.id = f.id"
    ))
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Array<Text>, _>(errors)
    .execute(conn)
}

/// Outbox rows of one job, oldest first (for tests, the CLI and debugging).
pub fn for_job(conn: &mut PgConnection, job_id: Uuid) -> QueryResult<Vec<OutboxMessage>> {
    outbox::table
        .filter(outbox::aggregate_id.eq(job_id))
        .order(outbox::id)
        .select(OutboxMessage::as_select())
        .load(conn)
}

/// Number of rows not yet delivered.
pub fn unpublished_count(conn: &mut PgConnection) -> QueryResult<i64> {
    outbox::table.filter(outbox::published_at.is_null()).count().get_result(conn)
}

/// When the earliest unpublished row becomes due, if any: an idle relay sleeps until then (or until notified), so a
/// retry backoff ends on time without a NOTIFY.
pub fn next_due(conn: &mut PgConnection) -> QueryResult<Option<DateTime<Utc>>> {
    outbox::table.filter(outbox::published_at.is_null()).select(diesel::dsl::min(outbox::available_at)).get_result(conn)
}

/// Deletes up to `limit` rows published more than `retention` ago, oldest first, and returns how many. Bounded so a
/// large backlog of history is trimmed in small transactions that never hold many locks.
pub fn delete_published_before(
    conn: &mut PgConnection,
    retention: std::time::Duration,
    limit: i64,
) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM outbox WHERE id IN (
             SELECT id FROM outbox
              WHERE published_at IS NOT NULL AND published_at < now() - $1 * interval '1 millisecond'
              ORDER BY published_at
              LIMIT $2)",
    )
    .bind::<diesel::sql_types::Double, _>(retention.as_secs_f64() * 1000.0)
    .bind::<BigInt, _>(limit)
    .execute(conn)
}

/// The backlog as operators see it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BacklogStats {
    /// Rows not yet delivered.
    pub unpublished: i64,
    /// Age in seconds of the oldest undelivered row (0 when none).
    pub oldest_unpublished_age_secs: f64,
}

#[derive(diesel::QueryableByName)]
struct BacklogRow {
    #[diesel(sql_type = BigInt)]
    unpublished: i64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    oldest_age: f64,
}

/// Reads [`BacklogStats`]; both parts come from the small partial index of unpublished rows.
pub fn backlog(conn: &mut PgConnection) -> QueryResult<BacklogStats> {
    let row: BacklogRow = diesel::sql_query(
        "SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS unpublished,
                COALESCE((SELECT extract(epoch FROM clock_timestamp() - created_at)::float8
                            FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1), 0) AS oldest_age",
    )
    .get_result(conn)?;
    Ok(BacklogStats { unpublished: row.unpublished, oldest_unpublished_age_secs: row.oldest_age })
}

/// Which rows [`list`] returns.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Only rows not yet delivered.
    pub unpublished: bool,
    /// Only undelivered rows whose last delivery failed.
    pub failed: bool,
    /// Only rows of this job.
    pub job: Option<Uuid>,
    /// At most this many (newest first).
    pub limit: i64,
}

/// Rows for inspection (`ackbox outbox ls`), newest first.
pub fn list(conn: &mut PgConnection, filter: &ListFilter) -> QueryResult<Vec<OutboxMessage>> {
    let mut q =
        outbox::table.select(OutboxMessage::as_select()).order(outbox::id.desc()).limit(filter.limit).into_boxed();
    if filter.unpublished || filter.failed {
        q = q.filter(outbox::published_at.is_null());
    }
    if filter.failed {
        q = q.filter(outbox::last_error.is_not_null());
    }
    if let Some(job) = filter.job {
        q = q.filter(outbox::aggregate_id.eq(job));
    }
    q.load(conn)
}

/// One row by id.
pub fn find(conn: &mut PgConnection, id: i64) -> QueryResult<Option<OutboxMessage>> {
    outbox::table.find(id).select(OutboxMessage::as_select()).first(conn).optional()
}

/// Re-publishes row `id` by inserting a copy as a new, due row (history is never edited). The copy carries an
/// `ackbox-replay-of` header naming the original. Consumers treat it like any duplicate: the claim is conditional
/// on the job's state, so a replay of a finished job changes nothing, and a replay of a stuck queued job runs it.
/// Returns the new row, or `None` if `id` does not exist.
pub fn replay(conn: &mut PgConnection, id: i64) -> QueryResult<Option<OutboxMessage>> {
    diesel::sql_query(
        "INSERT INTO outbox (aggregate_id, topic, key, payload, headers)
         SELECT aggregate_id, topic, key, payload, headers || jsonb_build_object('ackbox-replay-of', id::text)
           FROM outbox WHERE id = $1
      RETURNING id, aggregate_id, topic, key, payload, headers, created_at, available_at, published_at, attempts,
                last_error",
    )
    .bind::<BigInt, _>(id)
    .get_result::<ReplayedRow>(conn)
    .optional()
    .map(|row| row.map(ReplayedRow::into_message))
}

#[derive(diesel::QueryableByName)]
struct ReplayedRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    aggregate_id: Uuid,
    #[diesel(sql_type = Text)]
    topic: String,
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    payload: serde_json::Value,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    headers: serde_json::Value,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    available_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    published_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = diesel::sql_types::Int4)]
    attempts: i32,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    last_error: Option<String>,
}

impl ReplayedRow {
    fn into_message(self) -> OutboxMessage {
        OutboxMessage {
            id: self.id,
            aggregate_id: self.aggregate_id,
            topic: self.topic,
            key: self.key,
            payload: self.payload,
            headers: self.headers,
            created_at: self.created_at,
            available_at: self.available_at,
            published_at: self.published_at,
            attempts: self.attempts,
            last_error: self.last_error,
        }
    }
}

/// What `ackbox outbox stats` and the dashboard show.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct OutboxStats {
    /// Rows not yet delivered.
    pub unpublished: i64,
    /// Of those, rows whose last delivery failed.
    pub failing: i64,
    /// Age in seconds of the oldest undelivered row (0 when none).
    pub oldest_unpublished_age_secs: f64,
    /// Rows delivered in the last 60 s.
    pub published_last_minute: i64,
    /// Undelivered rows by delivery attempts so far: `(attempts, rows)`, ascending.
    pub unpublished_by_attempts: Vec<(i32, i64)>,
}

#[derive(diesel::QueryableByName)]
struct AttemptsRow {
    #[diesel(sql_type = diesel::sql_types::Int4)]
    attempts: i32,
    #[diesel(sql_type = BigInt)]
    rows: i64,
}

#[derive(diesel::QueryableByName)]
struct RateRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Reads [`OutboxStats`]. The undelivered parts come from the partial index of unpublished rows; the rate counts
/// rows delivered in the last minute (an index range on `published_at`, bounded by retention).
pub fn stats(conn: &mut PgConnection) -> QueryResult<OutboxStats> {
    let backlog = backlog(conn)?;
    let by_attempts: Vec<AttemptsRow> = diesel::sql_query(
        "SELECT attempts, count(*) AS rows FROM outbox WHERE published_at IS NULL GROUP BY attempts ORDER BY attempts",
    )
    .load(conn)?;
    let failing: RateRow =
        diesel::sql_query("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL AND last_error IS NOT NULL")
            .get_result(conn)?;
    let rate: RateRow = diesel::sql_query(
        "SELECT count(*) AS n FROM outbox WHERE published_at > clock_timestamp() - interval '60 seconds'",
    )
    .get_result(conn)?;
    Ok(OutboxStats {
        unpublished: backlog.unpublished,
        failing: failing.n,
        oldest_unpublished_age_secs: backlog.oldest_unpublished_age_secs,
        published_last_minute: rate.n,
        unpublished_by_attempts: by_attempts.into_iter().map(|r| (r.attempts, r.rows)).collect(),
    })
}

/// Records one backlog sample, unless another relay recorded one less than `min_gap` ago (so several relays do not
/// multiply the samples), and trims samples older than `keep`. The relay's maintenance calls it once per stats
/// interval; the dashboard charts the last hour.
pub fn record_backlog_sample(
    conn: &mut PgConnection,
    stats: &BacklogStats,
    min_gap: std::time::Duration,
    keep: std::time::Duration,
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO outbox_backlog_samples (unpublished, oldest_age_secs)
         SELECT $1, $2 WHERE NOT EXISTS (
             SELECT 1 FROM outbox_backlog_samples WHERE at > now() - $3 * interval '1 millisecond')",
    )
    .bind::<BigInt, _>(stats.unpublished)
    .bind::<diesel::sql_types::Double, _>(stats.oldest_unpublished_age_secs)
    .bind::<diesel::sql_types::Double, _>(min_gap.as_secs_f64() * 1000.0)
    .execute(conn)?;
    diesel::sql_query("DELETE FROM outbox_backlog_samples WHERE at < now() - $1 * interval '1 second'")
        .bind::<diesel::sql_types::Double, _>(keep.as_secs_f64())
        .execute(conn)?;
    Ok(())
}

/// One backlog sample.
#[derive(Clone, Debug, PartialEq, serde::Serialize, diesel::QueryableByName)]
pub struct BacklogSample {
    /// When it was taken.
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub at: DateTime<Utc>,
    /// Undelivered rows then.
    #[diesel(sql_type = BigInt)]
    pub unpublished: i64,
    /// Age in seconds of the oldest undelivered row then.
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub oldest_age_secs: f64,
}

/// Backlog samples of the last `window`, oldest first.
pub fn backlog_history(conn: &mut PgConnection, window: std::time::Duration) -> QueryResult<Vec<BacklogSample>> {
    diesel::sql_query(
        "SELECT at, unpublished, oldest_age_secs FROM outbox_backlog_samples
          WHERE at > now() - $1 * interval '1 second' ORDER BY at",
    )
    .bind::<diesel::sql_types::Double, _>(window.as_secs_f64())
    .load(conn)
}
