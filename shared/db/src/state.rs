//! Every write of `jobs.status` lives here. Each transition is one conditional UPDATE naming the status it expects
//! and, once a job has started, the attempt it belongs to (the fencing token). A transition that does not apply
//! (duplicate message, stale worker, already terminal) changes nothing and says so, which is what makes
//! at-least-once delivery safe.
//!
//! ```text
//!            submit                claim                 complete
//!   (none) ─────────▶ queued ─────────────▶ running ─────────────▶ succeeded
//!                       ▲                     │ fail (attempts < max)
//!                       └─────────────────────┤
//!                                             │ fail (attempts = max, or not retryable)
//!                                             ▼
//!                                           failed
//!
//!   queued ──cancel──▶ cancelled          running ──cancel request──▶ (attempt stops) ──▶ cancelled
//!   failed ──retry (operator)──▶ queued
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::dsl::now;
use diesel::prelude::*;
use diesel::sql_types::{Array, Int4, Jsonb, Uuid as SqlUuid};
use uuid::Uuid;

use crate::models::{Job, JobError, JobStatus, NewJob, NewOutboxMessage, TraceContext};
use crate::outbox;
use crate::prepared::prepared;
use crate::schema::jobs;
use ackbox_types::envelope::Envelope;
use ackbox_types::priority::Priority;

/// Inserts a new `queued` job and its first dispatch message in ONE transaction and returns the committed row.
/// When this returns `Ok`, the id is durable and may be handed to the client.
pub fn submit(conn: &mut PgConnection, new: &NewJob, topic: &str) -> QueryResult<Job> {
    conn.transaction(|conn| {
        // One row in, one row back.
        submit_many(conn, std::slice::from_ref(new), topic)?.pop().ok_or(diesel::result::Error::NotFound)
    })
}

/// The statement [`submit_many`] runs: every job and its first dispatch in ONE statement, so it is atomic on its own
/// (inside a transaction or not), one round trip whatever the number of jobs, and one text for every batch size, which
/// diesel keeps prepared ([`prepared`]): Postgres parses and plans it once per connection. `$1`–`$12` are the jobs'
/// columns and `$13`–`$19` their dispatches' (`outbox::message`), one array element per job, in the same order.
/// `outbox.aggregate_id` is no foreign key, so the two inserts need no order between them.
pub const SUBMIT_SQL: &str = "WITH new_jobs AS (
        INSERT INTO jobs (id, kind, payload, max_attempts, tenant_id, traceparent, tracestate, not_before, timeout_ms,
                          priority, queue, callback_url)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::int4[], $5::uuid[], $6::text[], $7::text[],
                             $8::timestamptz[], $9::int4[], $10::int2[], $11::text[], $12::text[])
        RETURNING *),
    dispatches AS (
        INSERT INTO outbox (aggregate_id, topic, key, payload, headers, available_at, priority)
        -- A dispatch without a time of its own is due now: the column's default, which a NULL would not take.
        SELECT d.aggregate_id, d.topic, d.key, d.payload, d.headers, coalesce(d.available_at, now()), d.priority
          FROM unnest($13::uuid[], $14::text[], $15::text[], $16::jsonb[], $17::jsonb[], $18::timestamptz[],
                      $19::int2[]) AS d(aggregate_id, topic, key, payload, headers, available_at, priority))
    SELECT * FROM new_jobs";

/// Inserts many new `queued` jobs and their first dispatch messages in ONE statement ([`SUBMIT_SQL`]: atomic on its
/// own, one NOTIFY), on the caller's connection. Returns the rows in the order of `news`.
pub fn submit_many(conn: &mut PgConnection, news: &[NewJob], topic: &str) -> QueryResult<Vec<Job>> {
    use diesel::sql_types::{Int2, Nullable, Text, Timestamptz};
    if news.is_empty() {
        return Ok(Vec::new());
    }
    // A scheduled job's first dispatch is due when the job is: the relay publishes it then.
    let dispatches: Vec<NewOutboxMessage> = news
        .iter()
        .map(|n| {
            let envelope = Envelope::new(n.id, &n.kind, 1).in_queue(&n.queue);
            let trace = TraceContext::from_columns(n.traceparent.as_deref(), n.tracestate.as_deref());
            outbox::message(topic, &envelope, trace.as_ref(), n.not_before, Priority::from_i16(n.priority_level))
        })
        .collect();
    let mut jobs: Vec<Job> = prepared(
        diesel::sql_query(SUBMIT_SQL)
            .bind::<Array<SqlUuid>, _>(news.iter().map(|n| n.id).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(news.iter().map(|n| n.kind.as_str()).collect::<Vec<_>>())
            .bind::<Array<Jsonb>, _>(news.iter().map(|n| &n.payload).collect::<Vec<_>>())
            .bind::<Array<Int4>, _>(news.iter().map(|n| n.max_attempts).collect::<Vec<_>>())
            .bind::<Array<SqlUuid>, _>(news.iter().map(|n| n.tenant_id).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(news.iter().map(|n| n.traceparent.as_deref()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(news.iter().map(|n| n.tracestate.as_deref()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Timestamptz>>, _>(news.iter().map(|n| n.not_before).collect::<Vec<_>>())
            .bind::<Array<Nullable<Int4>>, _>(news.iter().map(|n| n.timeout_ms).collect::<Vec<_>>())
            .bind::<Array<Int2>, _>(news.iter().map(|n| n.priority_level).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(news.iter().map(|n| n.queue.as_str()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(news.iter().map(|n| n.callback_url.as_deref()).collect::<Vec<_>>())
            .bind::<Array<SqlUuid>, _>(dispatches.iter().map(|d| d.aggregate_id).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(dispatches.iter().map(|d| d.topic.as_str()).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(dispatches.iter().map(|d| d.key.as_str()).collect::<Vec<_>>())
            .bind::<Array<Jsonb>, _>(dispatches.iter().map(|d| &d.payload).collect::<Vec<_>>())
            .bind::<Array<Jsonb>, _>(dispatches.iter().map(|d| &d.headers).collect::<Vec<_>>())
            .bind::<Array<Nullable<Timestamptz>>, _>(dispatches.iter().map(|d| d.available_at).collect::<Vec<_>>())
            .bind::<Array<Int2>, _>(dispatches.iter().map(|d| d.priority).collect::<Vec<_>>()),
    )
    .load(conn)?;
    // RETURNING gives no order guarantee: put the rows back in the caller's.
    let position: std::collections::HashMap<Uuid, usize> = news.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
    jobs.sort_by_key(|j| position.get(&j.id).copied().unwrap_or(usize::MAX));
    Ok(jobs)
}

/// One request of a group commit ([`submit_batch`]).
#[derive(Clone, Copy, Debug)]
pub struct BatchItem<'a> {
    /// The job.
    pub new: &'a NewJob,
    /// Its Idempotency-Key, if any.
    pub key: Option<IdempotencyKey<'a>>,
}

/// A group commit: many submissions in ONE transaction, each with its own outcome. Jobs without an idempotency key go
/// in with [`submit_many`] (one statement for all of them); keyed ones one by one, each in a savepoint, in
/// (tenant, key) order so concurrent batches never deadlock on keys, and in arrival order among equal keys, so a
/// later request with the same key as an earlier one in the batch replays that job. A request
/// Postgres refuses (a constraint) gets its error alone: it is rolled back to its savepoint (the unkeyed ones are
/// retried one by one, each in a savepoint, if their joint insert is refused) and the others commit. `Err` means the
/// transaction itself failed (an outage, or the COMMIT): nothing of the batch was written, or, if the connection was
/// lost during the COMMIT, possibly everything (the idempotency key resolves which, as for a single submit).
///
/// A batch without keys (the usual one) first tries the plain shape: [`submit_many`]'s one statement, atomic on its
/// own, so one round trip with no BEGIN, COMMIT or savepoint. Only if Postgres refuses it (not an outage) is the batch
/// written again in the savepoint shape above, one request at a time (the joint insert is not tried twice); the
/// refused statement wrote nothing, so nothing is written twice.
pub fn submit_batch(
    conn: &mut PgConnection,
    items: &[BatchItem<'_>],
    topic: &str,
) -> QueryResult<Vec<QueryResult<Submitted>>> {
    // The plain shape's refusal, if it was tried and refused: the savepoint shape then goes straight to one by one.
    let mut refused = None;
    if items.iter().all(|item| item.key.is_none()) {
        let news: Vec<NewJob> = items.iter().map(|item| item.new.clone()).collect();
        match submit_many(conn, &news, topic) {
            Ok(jobs) => return Ok(jobs.into_iter().map(|job| Ok(Submitted::Created(job))).collect()),
            Err(e) if crate::db::is_outage(&e) => return Err(e),
            Err(e) => refused = Some(e),
        }
    }
    conn.transaction(|conn| {
        let mut out: Vec<Option<QueryResult<Submitted>>> = (0..items.len()).map(|_| None).collect();
        let plain: Vec<usize> = (0..items.len()).filter(|&i| items[i].key.is_none()).collect();
        let news: Vec<NewJob> = plain.iter().map(|&i| items[i].new.clone()).collect();
        let joint = match refused {
            Some(e) => Err(e),
            // No savepoint when there is nothing to insert (a batch of keyed requests only).
            None if news.is_empty() => Ok(Vec::new()),
            None => conn.transaction(|c| submit_many(c, &news, topic)),
        };
        match joint {
            Ok(jobs) => {
                for (i, job) in plain.iter().zip(jobs) {
                    out[*i] = Some(Ok(Submitted::Created(job)));
                }
            }
            Err(e) if crate::db::is_outage(&e) => return Err(e),
            // One of them is refused: find which, each in a savepoint of its own.
            Err(_) => {
                for &i in &plain {
                    out[i] = Some(alone(conn, items[i], topic)?);
                }
            }
        }
        // Keyed ones in (tenant, key) order, arrival order among equal keys: two batches in flight lock their keys
        // in the same order, so they can wait on each other but never deadlock.
        let mut keyed: Vec<usize> = (0..items.len()).filter(|&i| items[i].key.is_some()).collect();
        keyed.sort_by_key(|&i| (items[i].new.tenant_id, items[i].key.map(|k| k.key)));
        for i in keyed {
            out[i] = Some(alone(conn, items[i], topic)?);
        }
        Ok(out.into_iter().map(|r| r.unwrap_or(Err(diesel::result::Error::NotFound))).collect())
    })
}

/// One item of a batch in a savepoint of its own: its refusal is its own result; an outage fails the batch.
fn alone(conn: &mut PgConnection, item: BatchItem<'_>, topic: &str) -> QueryResult<QueryResult<Submitted>> {
    match conn.transaction(|c| submit_idempotent(c, item.new, topic, item.key)) {
        Err(e) if crate::db::is_outage(&e) => Err(e),
        other => Ok(other),
    }
}

/// What [`submit_idempotent`] did.
#[derive(Clone, Debug)]
pub enum Submitted {
    /// A new job was committed.
    Created(Job),
    /// The idempotency key was already used for the same request: this is that job.
    Replayed(Job),
    /// The idempotency key was already used for a different request; nothing was written.
    KeyMismatch,
}

/// An idempotency key as the API received it.
#[derive(Clone, Copy, Debug)]
pub struct IdempotencyKey<'a> {
    /// The header value.
    pub key: &'a str,
    /// SHA-256 of the canonical request.
    pub fingerprint: &'a [u8],
    /// When the key may be reused.
    pub expires_at: DateTime<Utc>,
}

/// [`submit`], optionally under an idempotency key, in ONE transaction: the key, the job and its outbox row commit
/// together or not at all.
pub fn submit_idempotent(
    conn: &mut PgConnection,
    new: &NewJob,
    topic: &str,
    key: Option<IdempotencyKey<'_>>,
) -> QueryResult<Submitted> {
    let Some(key) = key else { return submit(conn, new, topic).map(Submitted::Created) };
    conn.transaction(|conn| {
        use crate::models::idempotency::{claim, Claim};
        match claim(conn, new.tenant_id, key.key, key.fingerprint, new.id, key.expires_at)? {
            Claim::Fresh => submit(conn, new, topic).map(Submitted::Created),
            Claim::Mismatch => Ok(Submitted::KeyMismatch),
            Claim::Replay(id) => match Job::find(conn, id)? {
                Some(job) => Ok(Submitted::Replayed(job)),
                // The job row cannot vanish while its key lives (they commit together and jobs are not deleted).
                None => Err(diesel::result::Error::NotFound),
            },
        }
    })
}

/// Which failed jobs [`retry_failed_many`] puts back: all of them, narrowed by kind, tenant (by name) and when they
/// failed. `failed_before` (the start of the operation) keeps a job that fails again meanwhile from being retried
/// twice by one operation.
#[derive(Clone, Debug)]
pub struct RetryFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this tenant's, by name.
    pub tenant: Option<String>,
    /// Only jobs that failed after this time.
    pub failed_after: Option<DateTime<Utc>>,
    /// Only jobs that failed before this time.
    pub failed_before: DateTime<Utc>,
    /// Only this queue's.
    pub queue: Option<String>,
}

impl RetryFilter {
    /// Every failed job that failed before `failed_before`.
    pub fn before(failed_before: DateTime<Utc>) -> Self {
        Self { kind: None, tenant: None, failed_after: None, failed_before, queue: None }
    }
}

/// The filter of [`count_failed`] and [`retry_failed_many`]: binds `$1` to `$5` in the order of [`RetryFilter`]'s
/// fields (kind, tenant, failed_after, failed_before, queue).
const RETRY_FILTER_SQL: &str = "status = 'failed' AND finished_at < $4
    AND ($1::text IS NULL OR kind = $1)
    AND ($2::text IS NULL OR tenant_id IN (SELECT id FROM tenants WHERE name = $2))
    AND ($3::timestamptz IS NULL OR finished_at > $3)
    AND ($5::text IS NULL OR queue = $5)";

/// What a statement that queues jobs again reads back ([`NEXT_DISPATCH_COLUMNS`]) to write each one's next dispatch:
/// the job's id, kind, queue, priority, the attempts it has used and its trace context. The automatic retry
/// ([`fail`]), bulk retry and both rescuers embed it, so their next envelope is built in one place; the operator's
/// single retry ([`retry_failed`]) builds it from the whole [`Job`] it returns.
#[derive(QueryableByName)]
struct NextDispatch {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    queue: String,
    #[diesel(sql_type = diesel::sql_types::SmallInt)]
    priority: i16,
    #[diesel(sql_type = Int4)]
    attempts: i32,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    traceparent: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    tracestate: Option<String>,
}

/// The columns [`NextDispatch`] reads, for `RETURNING` clauses (`j` is the alias of `jobs`).
const NEXT_DISPATCH_COLUMNS: &str = "j.id, j.kind, j.queue, j.priority, j.attempts, j.traceparent, j.tracestate";

impl NextDispatch {
    /// The outbox row of the job's next attempt on `topic`, due at `available_at` (now when `None`), at its
    /// priority, carrying its trace context.
    fn message(&self, topic: &str, available_at: Option<DateTime<Utc>>) -> NewOutboxMessage {
        let trace = TraceContext::from_columns(self.traceparent.as_deref(), self.tracestate.as_deref());
        let envelope = Envelope::new(self.id, &self.kind, self.attempts + 1).in_queue(&self.queue);
        outbox::message(topic, &envelope, trace.as_ref(), available_at, Priority::from_i16(self.priority))
    }

    /// Writes [`Self::message`].
    fn enqueue(&self, conn: &mut PgConnection, topic: &str, available_at: Option<DateTime<Utc>>) -> QueryResult<()> {
        outbox::enqueue_many(conn, &[self.message(topic, available_at)]).map(|_| ())
    }
}

/// A job bulk retry queued again, and the topic its last dispatch went to.
#[derive(QueryableByName)]
struct Requeued {
    #[diesel(embed)]
    next: NextDispatch,
    #[diesel(sql_type = diesel::sql_types::Text)]
    topic: String,
}

/// How many failed jobs `filter` matches (for a progress bar).
pub fn count_failed(conn: &mut PgConnection, filter: &RetryFilter) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let n: N = diesel::sql_query(format!("SELECT count(*) AS n FROM jobs WHERE {RETRY_FILTER_SQL}"))
        .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(filter.kind.as_deref())
        .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(filter.tenant.as_deref())
        .bind::<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>, _>(filter.failed_after)
        .bind::<diesel::sql_types::Timestamptz, _>(filter.failed_before)
        .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(filter.queue.as_deref())
        .get_result(conn)?;
    Ok(n.n)
}

/// [`retry_failed`] for up to `limit` jobs that `filter` matches, oldest failure first, in ONE transaction: each goes
/// back to `queued` (with one more attempt if it had used them up) with a fresh outbox row, to the topic of its last
/// dispatch (or `default_topic` once retention removed those rows). Returns how many; call it again until it returns
/// fewer than `limit`.
pub fn retry_failed_many(
    conn: &mut PgConnection,
    filter: &RetryFilter,
    limit: i64,
    default_topic: &str,
) -> QueryResult<usize> {
    conn.transaction(|conn| {
        let rows: Vec<Requeued> = diesel::sql_query(format!(
            "WITH picked AS (
                 SELECT id FROM jobs WHERE {RETRY_FILTER_SQL} ORDER BY finished_at LIMIT $6 FOR UPDATE SKIP LOCKED)
             UPDATE jobs j
                SET status = 'queued', max_attempts = greatest(j.max_attempts, j.attempts + 1), finished_at = NULL,
                    not_before = NULL, lease_expires_at = NULL, cancel_requested_at = NULL, updated_at = now()
              WHERE j.id IN (SELECT id FROM picked) AND j.status = 'failed'
          RETURNING {NEXT_DISPATCH_COLUMNS},
                    coalesce((SELECT o.topic FROM outbox o WHERE o.aggregate_id = j.id ORDER BY o.id DESC LIMIT 1),
                             $7) AS topic"
        ))
        .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(filter.kind.as_deref())
        .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(filter.tenant.as_deref())
        .bind::<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>, _>(filter.failed_after)
        .bind::<diesel::sql_types::Timestamptz, _>(filter.failed_before)
        .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(filter.queue.as_deref())
        .bind::<diesel::sql_types::BigInt, _>(limit)
        .bind::<diesel::sql_types::Text, _>(default_topic)
        .load(conn)?;
        let messages: Vec<_> = rows.iter().map(|r| r.next.message(&r.topic, None)).collect();
        outbox::enqueue_many(conn, &messages)?;
        Ok(rows.len())
    })
}

/// What [`submit_all`] did.
#[derive(Clone, Debug)]
pub enum SubmittedBatch {
    /// Every job of the batch was committed, in request order.
    Created(Vec<Job>),
    /// The idempotency key was already used for the same batch: these are its jobs, in request order.
    Replayed(Vec<Job>),
    /// The idempotency key was already used for a different request; nothing was written.
    KeyMismatch,
}

/// Submits a batch in ONE transaction, all or nothing: every job and its outbox row (and the key, if any) commit
/// together, or none does. With a key, the key stands for the whole batch: the same batch again returns the same
/// jobs in the same order; another request under the key is a mismatch. All jobs belong to one tenant.
pub fn submit_all(
    conn: &mut PgConnection,
    news: &[NewJob],
    topic: &str,
    key: Option<IdempotencyKey<'_>>,
) -> QueryResult<SubmittedBatch> {
    let Some(first) = news.first() else { return Ok(SubmittedBatch::Created(Vec::new())) };
    conn.transaction(|conn| {
        use crate::models::idempotency::{batch, claim, set_batch, Claim};
        if let Some(key) = key {
            match claim(conn, first.tenant_id, key.key, key.fingerprint, first.id, key.expires_at)? {
                Claim::Fresh => {
                    let ids: Vec<Uuid> = news.iter().map(|n| n.id).collect();
                    set_batch(conn, first.tenant_id, key.key, &ids)?;
                }
                Claim::Mismatch => return Ok(SubmittedBatch::KeyMismatch),
                Claim::Replay(_) => {
                    // A single submit's key has another fingerprint, so a replayed batch key always has its ids.
                    let Some(ids) = batch(conn, first.tenant_id, key.key)? else {
                        return Ok(SubmittedBatch::KeyMismatch);
                    };
                    return Job::find_many(conn, &ids).map(SubmittedBatch::Replayed);
                }
            }
        }
        submit_many(conn, news, topic).map(SubmittedBatch::Created)
    })
}

/// What [`cancel`] did.
#[derive(Clone, Debug)]
pub enum CancelOutcome {
    /// The job was queued and is now `cancelled`.
    Cancelled(Job),
    /// The job is running; a cancel was requested and the worker will stop it.
    Requested(Job),
    /// The job had already finished; nothing changed.
    AlreadyFinished(Job),
    /// No such job for this tenant.
    NotFound,
}

/// The statement [`cancel`] runs. The CTE locks the row and keeps its status *before* the update, so the decision
/// (cancel now, request a stop, or refuse) is taken once, on one locked version of the row: a job moving between
/// `running` and `queued` cannot slip between two statements and be called finished.
const CANCEL_SQL: &str = "
    WITH before AS (
        SELECT id, status FROM jobs WHERE id = $1 AND tenant_id = $2 FOR UPDATE),
    changed AS (
        UPDATE jobs j
           SET status = CASE WHEN b.status = 'queued' THEN 'cancelled' ELSE j.status END,
               finished_at = CASE WHEN b.status = 'queued' THEN now() ELSE j.finished_at END,
               not_before = CASE WHEN b.status = 'queued' THEN NULL ELSE j.not_before END,
               error = CASE WHEN b.status = 'queued'
                            THEN jsonb_build_object('code', 'cancelled', 'message', 'cancelled on request before it ran')
                            ELSE j.error END,
               updated_at = CASE WHEN b.status = 'queued' THEN now() ELSE j.updated_at END,
               cancel_requested_at = CASE WHEN b.status = 'running' THEN coalesce(j.cancel_requested_at, now())
                                          ELSE j.cancel_requested_at END
          FROM before b
         WHERE j.id = b.id AND b.status IN ('queued', 'running')
     RETURNING j.id)
    SELECT b.status FROM before b";

#[derive(QueryableByName)]
struct StatusRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: JobStatus,
}

/// Cancels a tenant's job in one atomic statement: a queued one at once (`cancelled`), a running one by request
/// (its worker hears of it through `LISTEN ackbox_job_cancel` within milliseconds, its heartbeat as a backstop; from
/// then on whatever the attempt reports, success or failure, the job ends `cancelled`, and it never starts again).
pub fn cancel(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid) -> QueryResult<CancelOutcome> {
    conn.transaction(|conn| {
        let before: Option<StatusRow> = diesel::sql_query(CANCEL_SQL)
            .bind::<SqlUuid, _>(id)
            .bind::<SqlUuid, _>(tenant_id)
            .get_result(conn)
            .optional()?;
        let Some(before) = before else { return Ok(CancelOutcome::NotFound) };
        // The row is locked by this transaction until it commits: this read sees exactly what the statement left.
        let job = Job::find(conn, id)?.ok_or(diesel::result::Error::NotFound)?;
        Ok(match before.status {
            JobStatus::Queued => CancelOutcome::Cancelled(job),
            JobStatus::Running => CancelOutcome::Requested(job),
            _ => CancelOutcome::AlreadyFinished(job),
        })
    })
}

/// A job a worker now owns for one attempt.
#[derive(Clone, Debug, QueryableByName)]
pub struct ClaimedJob {
    /// Job id.
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    /// Handler kind.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub kind: String,
    /// Handler input.
    #[diesel(sql_type = Jsonb)]
    pub payload: serde_json::Value,
    /// The attempt number this claim started: the fencing token for every later write.
    #[diesel(sql_type = Int4)]
    pub attempt: i32,
    /// Attempts allowed.
    #[diesel(sql_type = Int4)]
    pub max_attempts: i32,
    /// Lease end; the rescuer may take the job back after it.
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub lease_expires_at: DateTime<Utc>,
    /// When the job was accepted (for time-to-start).
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub created_at: DateTime<Utc>,
    /// When this attempt was claimed.
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub started_at: DateTime<Utc>,
    /// The handler timeout the submitter asked for (`None`: the worker's default).
    #[diesel(sql_type = diesel::sql_types::Nullable<Int4>)]
    pub timeout_ms: Option<i32>,
    /// The job's queue.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub queue: String,
}

/// `queued → running` for every listed job that is queued and due, in one statement. Jobs that are not (duplicates,
/// already running or terminal, not yet due, cancelled) are simply absent from the result, and so are jobs of a
/// paused queue, which the same statement marks skipped (`dispatch_skipped_at`): they stay `queued` and the rescuer
/// dispatches them again once their queue is resumed.
pub fn claim(conn: &mut PgConnection, ids: &[Uuid], lease: Duration) -> QueryResult<Vec<ClaimedJob>> {
    claim_kinds(conn, ids, lease, None)
}

/// The statement [`claim_kinds`] runs (`$1` ids, `$2` lease in ms, `$3` kinds or NULL), for tests that read its plan.
/// Both UPDATEs run whatever the outer statement reads; they touch disjoint rows (paused or not). Shaped as
/// [`complete_sql`] explains: `locked` reaches the batch through the primary key and locks the rows still queued
/// (its `FOR UPDATE` checks that again on the latest version), and the other conditions are checked on the locked
/// versions, so the cost stays linear in the batch whatever the statistics say about queued jobs.
pub const CLAIM_SQL: &str = "WITH locked AS (SELECT id, queue, not_before, cancel_requested_at, kind
                           FROM jobs WHERE id = ANY($1) AND status = 'queued' ORDER BY id FOR UPDATE),
              paused AS (SELECT l.id FROM locked l JOIN queues q ON q.name = l.queue WHERE q.paused_at IS NOT NULL),
              skipped AS (UPDATE jobs SET dispatch_skipped_at = now() WHERE id IN (SELECT id FROM paused) RETURNING id)
         UPDATE jobs j
            SET status = 'running', attempts = j.attempts + 1, started_at = now(), updated_at = now(),
                lease_expires_at = now() + $2 * interval '1 millisecond'
           FROM locked l
          WHERE j.id = l.id AND l.id NOT IN (SELECT id FROM paused)
            AND (l.not_before IS NULL OR l.not_before <= now())
            AND l.cancel_requested_at IS NULL AND ($3::text[] IS NULL OR l.kind = ANY($3))
      RETURNING j.id, j.kind, j.payload, j.attempts AS attempt, j.max_attempts, j.lease_expires_at, j.created_at,
                j.started_at, j.timeout_ms, j.queue";

/// [`claim`], restricted to the kinds a worker has handlers for (`None`: any kind). A job of another kind stays
/// `queued`: a worker never claims what it cannot run (see [`mark_skipped`]).
pub fn claim_kinds(
    conn: &mut PgConnection,
    ids: &[Uuid],
    lease: Duration,
    kinds: Option<&[String]>,
) -> QueryResult<Vec<ClaimedJob>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    prepared(
        diesel::sql_query(CLAIM_SQL)
            .bind::<Array<SqlUuid>, _>(ids)
            .bind::<diesel::sql_types::Double, _>(lease.as_secs_f64() * 1000.0)
            .bind::<diesel::sql_types::Nullable<Array<diesel::sql_types::Text>>, _>(kinds),
    )
    .load(conn)
}

/// Records that a worker without a handler for their kind received these jobs' dispatches: they stay `queued`, the
/// status document says why, and the rescuer dispatches them again as soon as a worker that runs the kind registers
/// (a rolling deploy that adds a kind, or fleets split by kind on one topic).
pub fn mark_skipped(conn: &mut PgConnection, ids: &[Uuid]) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::sql_query(
        "UPDATE jobs SET dispatch_skipped_at = now()
          WHERE id IN (SELECT id FROM jobs WHERE id = ANY($1) AND status = 'queued' ORDER BY id FOR UPDATE)",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .execute(conn)
}

/// A successful attempt to record.
#[derive(Clone, Debug)]
pub struct Success {
    /// Job id.
    pub id: Uuid,
    /// The attempt that produced it (fencing token).
    pub attempt: i32,
    /// Handler output.
    pub result: serde_json::Value,
}

/// A failed attempt queued again with its backoff.
#[derive(QueryableByName)]
struct RetryRow {
    #[diesel(embed)]
    next: NextDispatch,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    not_before: DateTime<Utc>,
}

/// The SET clause that appends the current attempt to `jobs.history` (see migration 19): `outcome` and `error` are
/// SQL expressions, and `j` is the alias of `jobs` in the statement. Column references in SET read the row as it was,
/// so `attempts` and `started_at` are the finishing attempt's.
fn append_history(j: &str, outcome: &str, error: &str) -> String {
    format!(
        "history = coalesce({j}.history, '[]'::jsonb) || jsonb_build_array(jsonb_build_object(
             'attempt', {j}.attempts, 'started_at', {j}.started_at, 'finished_at', now(),
             'outcome', {outcome}, 'error', {error}))"
    )
}

/// The statement [`complete`] runs (`$1` ids, `$2` attempts, `$3` results), for tests that read its plan.
///
/// Its shape keeps its cost linear in the batch whatever Postgres believes about the table
/// (`tests/batch_plans.rs`). The `locked` CTE reaches each row of the batch through the primary key and locks it, in
/// id order (so concurrent writers of the same rows never deadlock: `tests/lock_order.rs`); it returns the locked
/// (latest) version of each row with the attempt and result it was given. The fence (`running`, the same attempt) is
/// checked on those locked versions, which nothing else can change before the UPDATE, and never as a condition on
/// `jobs` itself. Such a condition is what Postgres plans from: when its statistics say that almost no job is
/// `running` (a backlog analysed before any job started), it read every running row first and rescanned the
/// batch for each, 512 × 512 rows a call (123 µs per job in a drain, `bench/findings.md`, session 13).
pub fn complete_sql() -> String {
    const STATUS: &str = "CASE WHEN j.cancel_requested_at IS NULL THEN 'succeeded' ELSE 'cancelled' END";
    const ERROR: &str = "CASE WHEN j.cancel_requested_at IS NULL THEN NULL
                             ELSE jsonb_build_object('code', 'cancelled', 'message',
                                  'cancelled on request while running; the attempt finished after the request') END";
    format!(
        "WITH locked AS (SELECT j.id, j.status, j.attempts, s.attempt, s.result
                           FROM unnest($1::uuid[], $2::int4[], $3::jsonb[]) AS s(id, attempt, result)
                           JOIN jobs j ON j.id = s.id
                          ORDER BY j.id FOR UPDATE OF j)
         UPDATE jobs j
            SET status = {STATUS},
                result = CASE WHEN j.cancel_requested_at IS NULL THEN l.result END,
                error = {ERROR},
                {history},
                finished_at = now(), updated_at = now(), lease_expires_at = NULL
           FROM locked l
          WHERE j.id = l.id AND l.status = 'running' AND l.attempts = l.attempt
      RETURNING j.id, j.status",
        history = append_history("j", STATUS, ERROR)
    )
}

#[derive(QueryableByName)]
struct CompletedRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: JobStatus,
}

/// `running → succeeded` for a batch, in one statement; a job whose cancel was accepted meanwhile ends `cancelled`
/// instead (the client was promised that). Returns the ids whose write applied, with the status each ended in; the
/// others belonged to a stale attempt (lease lost, duplicate) and were left alone.
pub fn complete(conn: &mut PgConnection, successes: &[Success]) -> QueryResult<Vec<(Uuid, JobStatus)>> {
    if successes.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = successes.iter().map(|s| s.id).collect();
    let attempts: Vec<i32> = successes.iter().map(|s| s.attempt).collect();
    let results: Vec<serde_json::Value> = successes.iter().map(|s| s.result.clone()).collect();
    let rows: Vec<CompletedRow> = prepared(
        diesel::sql_query(complete_sql())
            .bind::<Array<SqlUuid>, _>(ids)
            .bind::<Array<Int4>, _>(attempts)
            .bind::<Array<Jsonb>, _>(results),
    )
    .load(conn)?;
    Ok(rows.into_iter().map(|r| (r.id, r.status)).collect())
}

/// What [`fail`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailOutcome {
    /// Back to `queued`, with a new outbox row due at the given time.
    Retried {
        /// When the next attempt may start.
        not_before: DateTime<Utc>,
    },
    /// `failed` for good.
    Failed,
    /// A cancel had been accepted: the job ended `cancelled`, whatever the failure.
    Cancelled,
    /// The attempt was stale (another attempt or a terminal status won); nothing changed.
    Stale,
}

/// Records a failed attempt. Below `max_attempts` (and when `retryable`), the job goes back to `queued` with
/// `not_before = now() + backoff` and a new outbox row due at the same time; otherwise it ends `failed`. Either way
/// `error` keeps the failure. A job whose cancel was accepted ends `cancelled` instead, and is never retried. Call
/// inside a transaction: the outbox row must commit with the status change.
pub fn fail(
    conn: &mut PgConnection,
    id: Uuid,
    attempt: i32,
    err: &JobError,
    retryable: bool,
    backoff: Duration,
    topic: &str,
) -> QueryResult<FailOutcome> {
    let error_json = serde_json::to_value(err).unwrap_or(serde_json::Value::Null);
    if retryable {
        let retried: Option<RetryRow> = diesel::sql_query(format!(
            "UPDATE jobs j
                SET status = 'queued', error = $3, lease_expires_at = NULL, updated_at = now(),
                    not_before = now() + $4 * interval '1 millisecond', {history}
              WHERE id = $1 AND status = 'running' AND attempts = $2 AND attempts < max_attempts
                AND cancel_requested_at IS NULL
          RETURNING {NEXT_DISPATCH_COLUMNS}, j.not_before",
            history = append_history("j", "'failed'", "$3")
        ))
        .bind::<SqlUuid, _>(id)
        .bind::<Int4, _>(attempt)
        .bind::<Jsonb, _>(&error_json)
        .bind::<diesel::sql_types::Double, _>(backoff.as_secs_f64() * 1000.0)
        .get_result(conn)
        .optional()?;
        if let Some(row) = retried {
            row.next.enqueue(conn, topic, Some(row.not_before))?;
            return Ok(FailOutcome::Retried { not_before: row.not_before });
        }
    }
    const STATUS: &str = "CASE WHEN j.cancel_requested_at IS NULL THEN 'failed' ELSE 'cancelled' END";
    const ERROR: &str = "CASE WHEN j.cancel_requested_at IS NULL THEN $3
                             ELSE jsonb_build_object('code', 'cancelled', 'message',
                                  'cancelled on request while running; the attempt stopped with ' || ($3->>'code')) END";
    let ended: Option<StatusRow> = diesel::sql_query(format!(
        "UPDATE jobs j
            SET status = {STATUS}, error = {ERROR}, {history},
                finished_at = now(), lease_expires_at = NULL, updated_at = now()
          WHERE id = $1 AND status = 'running' AND attempts = $2
      RETURNING status",
        history = append_history("j", STATUS, ERROR)
    ))
    .bind::<SqlUuid, _>(id)
    .bind::<Int4, _>(attempt)
    .bind::<Jsonb, _>(&error_json)
    .get_result(conn)
    .optional()?;
    Ok(match ended {
        Some(row) if row.status == JobStatus::Cancelled => FailOutcome::Cancelled,
        Some(_) => FailOutcome::Failed,
        None => FailOutcome::Stale,
    })
}

#[derive(QueryableByName)]
struct BeatRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Int4)]
    attempt: i32,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    cancel_requested: bool,
}

/// What [`retry_failed`] did.
#[derive(Debug)]
pub enum RetryOutcome {
    /// Back to `queued` with a fresh dispatch row; the next attempt is `attempt`.
    Requeued {
        /// The job after the change.
        job: Job,
        /// The attempt number the new dispatch carries.
        attempt: i32,
    },
    /// Not `failed` (only failed jobs can be retried); nothing changed.
    NotFailed(Job),
    /// No such job.
    NotFound,
}

/// Operator retry: puts a `failed` job back to `queued` and inserts a fresh outbox row for its next attempt, in one
/// transaction. History is not rewritten: `attempts` keeps counting (the next attempt gets the next number, so
/// fencing holds against any late message of the old ones), the last error stays until an attempt succeeds, and
/// `max_attempts` grows by one if the job had used them all.
pub fn retry_failed(conn: &mut PgConnection, id: Uuid, topic: &str) -> QueryResult<RetryOutcome> {
    conn.transaction(|conn| {
        let requeued: Option<Job> =
            diesel::update(jobs::table.filter(jobs::id.eq(id)).filter(jobs::status.eq(JobStatus::Failed)))
                .set((
                    jobs::status.eq(JobStatus::Queued),
                    jobs::max_attempts.eq(diesel::dsl::sql::<Int4>("greatest(max_attempts, attempts + 1)")),
                    jobs::finished_at.eq(None::<DateTime<Utc>>),
                    jobs::not_before.eq(None::<DateTime<Utc>>),
                    jobs::lease_expires_at.eq(None::<DateTime<Utc>>),
                    jobs::cancel_requested_at.eq(None::<DateTime<Utc>>),
                    jobs::updated_at.eq(now),
                ))
                .returning(Job::as_returning())
                .get_result(conn)
                .optional()?;
        if let Some(job) = requeued {
            let attempt = job.attempts + 1;
            outbox::enqueue(
                conn,
                topic,
                &Envelope::new(job.id, &job.kind, attempt).in_queue(&job.queue),
                job.trace_context().as_ref(),
                None,
                job.priority(),
            )?;
            return Ok(RetryOutcome::Requeued { job, attempt });
        }
        Ok(match jobs::table.find(id).select(Job::as_select()).first(conn).optional()? {
            Some(job) => RetryOutcome::NotFailed(job),
            None => RetryOutcome::NotFound,
        })
    })
}

/// The statement [`heartbeat`] runs (`$1` ids, `$2` attempts, `$3` lease in ms), for tests that read its plan. Shaped
/// as [`complete_sql`] explains, so that its cost stays linear in the jobs a worker holds.
pub const HEARTBEAT_SQL: &str = "WITH locked AS (SELECT j.id, j.status, j.attempts, h.attempt
                           FROM unnest($1::uuid[], $2::int4[]) AS h(id, attempt)
                           JOIN jobs j ON j.id = h.id
                          ORDER BY j.id FOR UPDATE OF j)
         UPDATE jobs j SET lease_expires_at = now() + $3 * interval '1 millisecond'
           FROM locked l
          WHERE j.id = l.id AND l.status = 'running' AND l.attempts = l.attempt
      RETURNING j.id, j.attempts AS attempt, j.cancel_requested_at IS NOT NULL AS cancel_requested";

/// Extends the leases of running attempts in one statement, locking rows in id order (as [`complete`] and [`claim`]
/// do, so they never deadlock). Returns `(id, attempt, cancel requested)` for each attempt that still holds its
/// lease; an attempt missing from the result has lost it (rescued, or finished elsewhere), and its handler should stop.
pub fn heartbeat(
    conn: &mut PgConnection,
    held: &[(Uuid, i32)],
    lease: Duration,
) -> QueryResult<Vec<(Uuid, i32, bool)>> {
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, attempts): (Vec<Uuid>, Vec<i32>) = held.iter().copied().unzip();
    let rows: Vec<BeatRow> = prepared(
        diesel::sql_query(HEARTBEAT_SQL)
            .bind::<Array<SqlUuid>, _>(ids)
            .bind::<Array<Int4>, _>(attempts)
            .bind::<diesel::sql_types::Double, _>(lease.as_secs_f64() * 1000.0),
    )
    .load(conn)?;
    Ok(rows.into_iter().map(|r| (r.id, r.attempt, r.cancel_requested)).collect())
}

/// Records a progress report of a running attempt (fenced like every other write). Returns whether it applied.
pub fn progress(conn: &mut PgConnection, id: Uuid, attempt: i32, report: &serde_json::Value) -> QueryResult<bool> {
    let n = diesel::update(
        jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::status.eq(JobStatus::Running))
            .filter(jobs::attempts.eq(attempt)),
    )
    .set((jobs::progress.eq(Some(report)), jobs::updated_at.eq(now)))
    .execute(conn)?;
    Ok(n == 1)
}

/// `queued → failed` (`undeliverable`) for jobs whose dispatch the broker refused for good (the relay marked the
/// row dead): no retry of the same message can succeed, so the client is told now instead of never. A job that
/// moved on meanwhile (running, finished) is left alone. Returns how many failed.
pub fn fail_undeliverable(conn: &mut PgConnection, failures: &[(Uuid, String)]) -> QueryResult<usize> {
    if failures.is_empty() {
        return Ok(0);
    }
    let (ids, errors): (Vec<Uuid>, Vec<String>) = failures.iter().cloned().unzip();
    diesel::sql_query(
        "UPDATE jobs j
            SET status = 'failed', finished_at = now(), updated_at = now(), not_before = NULL,
                error = jsonb_build_object('code', 'undeliverable',
                    'message', 'the broker refused the job''s dispatch message for good: ' || f.err)
           FROM unnest($1::uuid[], $2::text[]) AS f(id, err)
          WHERE j.id = f.id AND j.status = 'queued'",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Array<diesel::sql_types::Text>, _>(errors)
    .execute(conn)
}

/// What one rescuer pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RescueReport {
    /// Running jobs whose lease expired, put back to `queued` with a new outbox row.
    pub requeued: usize,
    /// Running jobs whose lease expired on their last attempt, now `failed`.
    pub failed: usize,
    /// Running jobs whose lease expired after a cancel was requested, now `cancelled`.
    pub cancelled: usize,
    /// Queued jobs whose dispatch was published long ago but never started, dispatched again.
    pub redispatched: usize,
}

/// Advisory lock key that makes lease-rescue passes mutually exclusive across processes.
pub const RESCUER_LOCK_KEY: i64 = 0x61636b5f726573;
/// Advisory lock key of the stale-dispatch part, taken in its own transaction.
pub const REDISPATCH_LOCK_KEY: i64 = 0x61636b5f726564;

/// Longest redispatch wait: `dispatch_timeout * 2^6`.
pub const MAX_REDISPATCH_EXPONENT: i32 = 6;

/// A job a rescuer changed, and the status it left it in (only `queued` ones are dispatched again).
#[derive(QueryableByName)]
struct RescuedRow {
    #[diesel(embed)]
    next: NextDispatch,
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: JobStatus,
}

fn try_lock(conn: &mut PgConnection, key: i64) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Locked {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        locked: bool,
    }
    let lock: Locked =
        diesel::sql_query(format!("SELECT pg_try_advisory_xact_lock({key}) AS locked")).get_result(conn)?;
    Ok(lock.locked)
}

/// One rescuer pass: [`rescue_leases`], then [`rescue_dispatches`], each in its own transaction (a slow or failing
/// one never rolls the other back). Returns `None` when another process held both locks.
pub fn rescue(
    conn: &mut PgConnection,
    dispatch_timeout: Duration,
    limit: i64,
    topic: &str,
) -> QueryResult<Option<RescueReport>> {
    let leases = rescue_leases(conn, limit, topic)?;
    let dispatches = rescue_dispatches(conn, dispatch_timeout, limit, topic)?;
    if leases.is_none() && dispatches.is_none() {
        return Ok(None);
    }
    let mut report = leases.unwrap_or_default();
    report.redispatched = dispatches.unwrap_or(0);
    Ok(Some(report))
}

/// Lease rescue, in one transaction, if no other process holds its lock (`None` then): a `running` job whose lease
/// expired (its worker died or stalled) goes back to `queued` with a new outbox row, or to `failed`
/// (`lease_expired`) when it has no attempts left, or to `cancelled` when a cancel was accepted. At most `limit`
/// jobs.
pub fn rescue_leases(conn: &mut PgConnection, limit: i64, topic: &str) -> QueryResult<Option<RescueReport>> {
    conn.transaction(|conn| {
        if !try_lock(conn, RESCUER_LOCK_KEY)? {
            return Ok(None);
        }
        let mut report = RescueReport::default();
        const LEASE_ERROR: &str = "jsonb_build_object('code', CASE WHEN j.cancel_requested_at IS NOT NULL
                                                                THEN 'cancelled' ELSE 'lease_expired' END,
                        'message', format('attempt %s stopped renewing its lease (worker died or stalled)', j.attempts))";
        let expired: Vec<RescuedRow> = diesel::sql_query(format!(
            "WITH expired AS (
                 SELECT id FROM jobs
                  -- finished_at IS NULL: read through jobs_open_idx, the live jobs (migration 22)
                  WHERE finished_at IS NULL AND status = 'running' AND lease_expires_at < now()
                  ORDER BY lease_expires_at
                  LIMIT $1
                    FOR UPDATE SKIP LOCKED)
             UPDATE jobs j
                SET status = CASE WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
                                  WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'queued' END,
                    error = {LEASE_ERROR}, {history},
                    finished_at = CASE WHEN j.cancel_requested_at IS NOT NULL OR j.attempts >= j.max_attempts
                                       THEN now() END,
                    lease_expires_at = NULL, not_before = NULL, updated_at = now()
               FROM expired
              WHERE j.id = expired.id
          RETURNING {NEXT_DISPATCH_COLUMNS}, j.status",
            history = append_history("j", "'lease_expired'", LEASE_ERROR)
        ))
        .bind::<diesel::sql_types::BigInt, _>(limit)
        .load(conn)?;
        let mut messages = Vec::new();
        for row in &expired {
            if row.status == JobStatus::Queued {
                messages.push(row.next.message(topic, None));
                report.requeued += 1;
            } else if row.status == JobStatus::Cancelled {
                // A cancel was requested and the attempt died: it ends as asked.
                report.cancelled += 1;
            } else {
                report.failed += 1;
            }
        }
        // The requeued jobs' next dispatches, in one statement (as `retry_failed_many` writes its own).
        outbox::enqueue_many(conn, &messages)?;
        Ok(Some(report))
    })
}

/// Stale-dispatch rescue, in one transaction, if no other process holds its lock (`None` then): a `queued`, due job
/// whose latest dispatch was published more than `dispatch_timeout` ago (or whose outbox rows are gone) and that
/// never started gets a new outbox row; this covers a broker that lost the message. So does a job a worker skipped
/// for lack of a handler ([`mark_skipped`]), at once, once a worker that runs its kind has registered since. Each job's waits double
/// (`dispatch_timeout * 2^redispatches`, up to 2^[`MAX_REDISPATCH_EXPONENT`]), and at most `limit` jobs are sent per
/// pass, so consumers that lag by more than the timeout get a bounded trickle of extra messages, not the whole
/// backlog again on every pass. Returns how many were sent.
pub fn rescue_dispatches(
    conn: &mut PgConnection,
    dispatch_timeout: Duration,
    limit: i64,
    topic: &str,
) -> QueryResult<Option<usize>> {
    conn.transaction(|conn| {
        if !try_lock(conn, REDISPATCH_LOCK_KEY)? {
            return Ok(None);
        }
        let stale: Vec<RescuedRow> = diesel::sql_query(format!(
            "WITH stale AS (
                 SELECT j.id FROM jobs j
                  -- finished_at IS NULL: read through jobs_open_idx, the live jobs in acceptance order (migration 22)
                  WHERE j.finished_at IS NULL AND j.status = 'queued' AND j.cancel_requested_at IS NULL
                    AND (j.not_before IS NULL OR j.not_before <= now())
                    AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.aggregate_id = j.id AND o.published_at IS NULL)
                    -- a paused queue's jobs wait for its resume
                    AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = j.queue AND q.paused_at IS NOT NULL)
                    AND (
                        -- skipped by a worker without the kind, and a worker with it registered since: at once
                        (j.dispatch_skipped_at IS NOT NULL AND EXISTS (
                            SELECT 1 FROM job_kinds k WHERE k.kind = j.kind AND k.registered_at > j.dispatch_skipped_at))
                        -- skipped while its queue was paused, and the queue resumed since: at once
                     OR (j.dispatch_skipped_at IS NOT NULL AND EXISTS (
                            SELECT 1 FROM queues q WHERE q.name = j.queue AND q.resumed_at > j.dispatch_skipped_at))
                        -- or lost: published long ago and never started, with doubling waits per job
                     OR (j.updated_at < now() - $1 * interval '1 millisecond'
                         AND (j.last_dispatched_at IS NULL OR j.last_dispatched_at < now()
                              - $1 * interval '1 millisecond' * power(2, least(j.redispatches, {MAX_REDISPATCH_EXPONENT})))
                         AND NOT EXISTS (
                             SELECT 1 FROM outbox o
                              WHERE o.aggregate_id = j.id AND o.published_at > now() - $1 * interval '1 millisecond')))
                  ORDER BY j.created_at
                  LIMIT $2
                    FOR UPDATE OF j SKIP LOCKED)
             UPDATE jobs j SET last_dispatched_at = now(), redispatches = j.redispatches + 1, dispatch_skipped_at = NULL
               FROM stale WHERE j.id = stale.id
          RETURNING {NEXT_DISPATCH_COLUMNS}, j.status"
        ))
        .bind::<diesel::sql_types::Double, _>(dispatch_timeout.as_secs_f64() * 1000.0)
        .bind::<diesel::sql_types::BigInt, _>(limit)
        .load(conn)?;
        let messages: Vec<_> = stale.iter().map(|row| row.next.message(topic, None)).collect();
        outbox::enqueue_many(conn, &messages)?;
        Ok(Some(stale.len()))
    })
}

/// Inserts `jobs` queued jobs of `kind` (tenant [`crate::models::DEFAULT_TENANT`]) with their outbox rows in bulk,
/// with UUIDv7 ids in order as the API would have issued them:
/// one statement per table in one transaction, envelopes built in SQL in the exact shape [`Envelope`] encodes and
/// the headers [`outbox::message`] writes for an untraced job (`shared/db/tests/state_transitions.rs` checks both).
/// The bench's drain starts from this; the API never uses it.
pub fn preload(conn: &mut PgConnection, jobs: i64, kind: &str, topic: &str) -> QueryResult<()> {
    conn.transaction(|c| {
        // UUIDv7 ids in submission order, as the API issues them (`Uuid::now_v7`): 64 jobs per millisecond, a 12-bit
        // counter in `rand_a` keeping them ordered within one. Random (v4) ids would scatter every claim's and
        // completion's index entries over the whole primary key and cost Postgres a fifth more per job than the
        // API's own ids do.
        diesel::sql_query(
            "CREATE TEMP TABLE preload ON COMMIT DROP AS
             SELECT (lpad(to_hex(b.ms + n / 64), 12, '0') || '7' || lpad(to_hex(n % 4096), 3, '0')
                     || to_hex(8 + floor(random() * 4)::int) || substr(md5(random()::text), 1, 15))::uuid AS id
               FROM generate_series(0, $1 - 1) n,
                    (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms) b
              ORDER BY n",
        )
        .bind::<diesel::sql_types::BigInt, _>(jobs)
        .execute(c)?;
        diesel::sql_query(
            "INSERT INTO jobs (id, tenant_id, kind, payload, max_attempts)
             SELECT id, '00000000-0000-0000-0000-000000000000', $1, '{}', 3 FROM preload ORDER BY preload.id",
        )
        .bind::<diesel::sql_types::Text, _>(kind)
        .execute(c)?;
        diesel::sql_query(
            "INSERT INTO outbox (aggregate_id, topic, key, payload)
             SELECT id, $2, id::text,
                    jsonb_build_object('v', 1, 'job_id', id, 'kind', $1::text, 'attempt', 1,
                                       'enqueued_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))
               FROM preload ORDER BY preload.id",
        )
        .bind::<diesel::sql_types::Text, _>(kind)
        .bind::<diesel::sql_types::Text, _>(topic)
        .execute(c)?;
        Ok(())
    })
}
