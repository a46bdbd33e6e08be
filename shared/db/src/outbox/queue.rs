//! The outbox as a queue: writers insert ([`enqueue`]), always on the caller's connection so the row commits or
//! rolls back together with the job change that caused it; the relay claims unpublished rows by *state* under
//! `FOR UPDATE SKIP LOCKED` ([`claim_batch`]), never by reading past a cursor (a transaction that took a low id but
//! committed late is still picked up, and several relays never block each other), marks them, and trims history.

use chrono::{DateTime, Utc};
use diesel::dsl::now;
use diesel::prelude::*;
use diesel::query_dsl::LoadQuery;
use diesel::sql_types::{Array, BigInt, Text};

use crate::models::{NewOutboxMessage, OutboxMessage, TraceContext};
use crate::prepared::prepared;
use crate::schema::outbox;
use ackbox_types::envelope::Envelope;
use ackbox_types::priority::Priority;

/// Longest delivery backoff after repeated failures: 2^6 s.
pub const MAX_BACKOFF_EXPONENT: i32 = 6;

/// Inserts the dispatch message for `envelope` into the outbox, with the job's W3C trace context (if it has one) in
/// its headers, so every dispatch of a job (first, retries, rescues, replays) continues the submit's trace. Call it
/// inside the transaction that changed the job.
pub fn enqueue(
    conn: &mut PgConnection,
    topic: &str,
    envelope: &Envelope,
    trace: Option<&TraceContext>,
    available_at: Option<DateTime<Utc>>,
    priority: Priority,
) -> QueryResult<()> {
    let row = message(topic, envelope, trace, available_at, priority);
    diesel::insert_into(outbox::table).values(&row).execute(conn).map(|_| ())
}

/// [`enqueue`] for many rows in one statement (so one NOTIFY): the next dispatches of jobs sent round again (a bulk
/// retry of failed jobs, the rescuer's passes). A submit's first dispatches go in with their jobs (`state::SUBMIT_SQL`).
pub fn enqueue_many(conn: &mut PgConnection, rows: &[NewOutboxMessage]) -> QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    diesel::insert_into(outbox::table).values(rows).execute(conn)
}

/// The outbox row that dispatches `envelope`: keyed by the job id, at the job's `priority` (the relay publishes it
/// onto that level's topic). Its headers are the job's trace context and nothing else: the envelope already names
/// the kind, attempt and queue, and a header is not free (on nisshi each is a row the broker inserts, which was a
/// fifth of the drain's cost; on Kafka those three were roughly a quarter of each record's bytes).
pub fn message(
    topic: &str,
    envelope: &Envelope,
    trace: Option<&TraceContext>,
    available_at: Option<DateTime<Utc>>,
    priority: Priority,
) -> NewOutboxMessage {
    let mut headers = serde_json::json!({});
    if let (Some(trace), Some(map)) = (trace, headers.as_object_mut()) {
        for (name, value) in trace.headers() {
            map.insert(name.to_string(), value.into());
        }
    }
    NewOutboxMessage {
        aggregate_id: envelope.job_id,
        topic: topic.to_string(),
        key: envelope.job_id.to_string(),
        payload: envelope.to_json(),
        headers,
        available_at,
        priority: priority.as_i16(),
    }
}

/// Locks up to `limit` unpublished rows that are due, highest priority first and oldest first within a priority
/// (`outbox_unpublished_priority_idx`), skipping rows another relay holds. The locks last
/// until the caller's transaction ends, so call it inside one and mark the rows before committing.
pub fn claim_batch(conn: &mut PgConnection, limit: i64) -> QueryResult<Vec<OutboxMessage>> {
    claim_statement(limit).load(conn)
}

/// The statement [`claim_batch`] runs, for callers that want its plan (`EXPLAIN` in the relay's tests): one
/// definition, so a test never checks a copy that drifted from it.
pub fn claim_statement(
    limit: i64,
) -> impl diesel::query_builder::QueryFragment<diesel::pg::Pg> + LoadQuery<'static, PgConnection, OutboxMessage> {
    outbox::table
        .filter(outbox::published_at.is_null())
        .filter(outbox::dead_at.is_null())
        .filter(outbox::available_at.le(now))
        .order((outbox::priority.desc(), outbox::id))
        .limit(limit)
        .for_update()
        .skip_locked()
        .select(OutboxMessage::as_select())
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

/// Marks rows the broker refused for good (an error no retry can fix, such as a message over the size limit) as
/// dead, in one statement: never claimed again, kept with their error for `ackbox outbox ls --dead`. Returns the
/// jobs they dispatched, each with its row's error.
pub fn mark_dead(conn: &mut PgConnection, dead: &[(i64, String)]) -> QueryResult<Vec<(uuid::Uuid, String)>> {
    if dead.is_empty() {
        return Ok(Vec::new());
    }
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        aggregate_id: uuid::Uuid,
        #[diesel(sql_type = Text)]
        err: String,
    }
    let (ids, errors): (Vec<i64>, Vec<String>) = dead.iter().cloned().unzip();
    let rows: Vec<Row> = diesel::sql_query(
        "UPDATE outbox o SET attempts = o.attempts + 1, last_error = d.err, dead_at = clock_timestamp()
           FROM unnest($1::bigint[], $2::text[]) AS d(id, err)
          WHERE o.id = d.id
      RETURNING o.aggregate_id, d.err",
    )
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Array<Text>, _>(errors)
    .load(conn)?;
    Ok(rows.into_iter().map(|r| (r.aggregate_id, r.err)).collect())
}

/// The query behind [`next_due`]. Its predicate is exactly `outbox_due_idx`'s (migration 21), so the minimum is the
/// index's first entry: every round that claims less than a full batch asks it, and without the index it read the
/// whole table, published history included (80 ms a round with 100,000 rows in the bench's drain).
pub const NEXT_DUE_SQL: &str =
    "SELECT min(available_at) AS due FROM outbox WHERE published_at IS NULL AND dead_at IS NULL";

/// When the earliest unpublished row becomes due, if any: an idle relay sleeps until then (or until notified), so a
/// retry backoff ends on time without a NOTIFY.
pub fn next_due(conn: &mut PgConnection) -> QueryResult<Option<DateTime<Utc>>> {
    #[derive(QueryableByName)]
    struct Due {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
        due: Option<DateTime<Utc>>,
    }
    prepared(diesel::sql_query(NEXT_DUE_SQL)).get_result::<Due>(conn).map(|d| d.due)
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
