//! The outbox for people: counts, listings, one row, replays, and the backlog history the dashboard draws
//! (`ackbox outbox ...`, the dashboard, tests).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use uuid::Uuid;

use crate::models::OutboxMessage;
use crate::schema::outbox;

/// Outbox rows of one job, oldest first (for tests, the CLI and debugging).
pub fn for_job(conn: &mut PgConnection, job_id: Uuid) -> QueryResult<Vec<OutboxMessage>> {
    outbox::table
        .filter(outbox::aggregate_id.eq(job_id))
        .order(outbox::id)
        .select(OutboxMessage::as_select())
        .load(conn)
}

/// The topic of the job's latest dispatch, where a retry of it goes (its kind's topic, say); `None` once retention
/// removed its rows.
pub fn last_topic(conn: &mut PgConnection, job_id: Uuid) -> QueryResult<Option<String>> {
    outbox::table
        .filter(outbox::aggregate_id.eq(job_id))
        .order(outbox::id.desc())
        .select(outbox::topic)
        .first(conn)
        .optional()
}

/// Number of rows not yet delivered (dead rows, which never will be, are not counted).
pub fn unpublished_count(conn: &mut PgConnection) -> QueryResult<i64> {
    outbox::table.filter(outbox::published_at.is_null()).filter(outbox::dead_at.is_null()).count().get_result(conn)
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
        "SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL AND dead_at IS NULL) AS unpublished,
                COALESCE((SELECT extract(epoch FROM clock_timestamp() - created_at)::float8
                            FROM outbox WHERE published_at IS NULL AND dead_at IS NULL ORDER BY id LIMIT 1), 0)
                    AS oldest_age",
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
    /// Only dead rows: refused by the broker for good, never retried (their jobs failed `undeliverable`).
    pub dead: bool,
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
        q = q.filter(outbox::published_at.is_null()).filter(outbox::dead_at.is_null());
    }
    if filter.dead {
        q = q.filter(outbox::dead_at.is_not_null());
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
        "INSERT INTO outbox (aggregate_id, topic, key, payload, headers, priority)
         SELECT aggregate_id, topic, key, payload, headers || jsonb_build_object('ackbox-replay-of', id::text), priority
           FROM outbox WHERE id = $1
      RETURNING id, aggregate_id, topic, key, payload, headers, created_at, available_at, published_at, attempts,
                last_error, priority",
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
    #[diesel(sql_type = diesel::sql_types::SmallInt)]
    priority: i16,
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
            // A replay is a new row: never dead.
            dead_at: None,
            priority: self.priority,
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
        "SELECT attempts, count(*) AS rows FROM outbox WHERE published_at IS NULL AND dead_at IS NULL
          GROUP BY attempts ORDER BY attempts",
    )
    .load(conn)?;
    let failing: RateRow = diesel::sql_query(
        "SELECT count(*) AS n FROM outbox WHERE published_at IS NULL AND dead_at IS NULL AND last_error IS NOT NULL",
    )
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
