//! The `jobs` table: the row, the insertable and read queries (the status type is `ackbox_types::status`). Status writes live in
//! [`crate::state`], nowhere else.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;

use uuid::Uuid;

use crate::schema::jobs;

pub use ackbox_types::priority::Priority;
pub use ackbox_types::status::{JobError, JobStatus, UnknownStatus};
pub use ackbox_types::trace::TraceContext;

/// A row of `jobs` (also read by name, from `RETURNING *` of raw SQL such as `state::SUBMIT_SQL`).
#[derive(Clone, Debug, Queryable, QueryableByName, Selectable, Identifiable, serde::Serialize)]
#[diesel(table_name = jobs, check_for_backend(Pg))]
pub struct Job {
    /// UUIDv7 id.
    pub id: Uuid,
    /// Handler kind.
    pub kind: String,
    /// Handler input.
    pub payload: serde_json::Value,
    /// Current status.
    pub status: JobStatus,
    /// Attempts started so far; the fencing token of the current attempt.
    pub attempts: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Output once succeeded.
    pub result: Option<serde_json::Value>,
    /// Last failure.
    pub error: Option<serde_json::Value>,
    /// Commit time of the submission.
    pub created_at: DateTime<Utc>,
    /// Last status write.
    pub updated_at: DateTime<Utc>,
    /// Start of the latest attempt.
    pub started_at: Option<DateTime<Utc>>,
    /// Time the job became terminal.
    pub finished_at: Option<DateTime<Utc>>,
    /// Not claimable before this time.
    pub not_before: Option<DateTime<Utc>>,
    /// Lease of the running attempt.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Latest progress report.
    pub progress: Option<serde_json::Value>,
    /// Owner.
    pub tenant_id: Uuid,
    /// When a cancel was requested while running.
    pub cancel_requested_at: Option<DateTime<Utc>>,
    /// When a worker without a handler for the kind received its dispatch (cleared when dispatched again).
    pub dispatch_skipped_at: Option<DateTime<Utc>>,
    /// W3C `traceparent` of the submit span: every dispatch of the job carries it.
    pub traceparent: Option<String>,
    /// W3C `tracestate` that came with the submit.
    pub tracestate: Option<String>,
    /// The handler timeout the submitter asked for (`None`: the worker's default).
    pub timeout_ms: Option<i32>,
    /// Priority (`Priority::as_i16`): chooses the topic of every dispatch; see [`Job::priority`].
    #[diesel(column_name = priority)]
    pub priority_level: i16,
    /// The queue it belongs to.
    pub queue: String,
    /// Finished attempts, oldest first: `[{attempt, started_at, finished_at, outcome, error}]` (`None`: none yet).
    pub history: Option<serde_json::Value>,
    /// Where the status document is POSTed when the job ends (`None`: nowhere).
    pub callback_url: Option<String>,
    /// `pending`, `delivered` or `failed` once the job ended with a `callback_url` (`None` before).
    pub callback_state: Option<String>,
    /// Delivery attempts of the latest end's callback.
    pub callback_attempts: i32,
    /// Why the latest delivery attempt failed.
    pub callback_last_error: Option<String>,
}

/// A job to insert; the database fills status (`queued`), counters and timestamps.
#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = jobs)]
pub struct NewJob {
    /// UUIDv7 id, made by the caller so it can be returned without a round trip.
    pub id: Uuid,
    /// Handler kind.
    pub kind: String,
    /// Handler input.
    pub payload: serde_json::Value,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Owner.
    pub tenant_id: Uuid,
    /// W3C `traceparent` of the submit span.
    pub traceparent: Option<String>,
    /// W3C `tracestate` that came with the submit.
    pub tracestate: Option<String>,
    /// Not claimed (and its first dispatch not published) before this time: `run_at` / `delay_ms`.
    pub not_before: Option<DateTime<Utc>>,
    /// The handler timeout the submitter asked for.
    pub timeout_ms: Option<i32>,
    /// Priority (`Priority::as_i16`).
    #[diesel(column_name = priority)]
    pub priority_level: i16,
    /// The queue: the request's, else the kind's, else [`DEFAULT_QUEUE`].
    pub queue: String,
    /// Where the status document is POSTed when the job ends, already checked (`ackbox_types::callback`).
    pub callback_url: Option<String>,
    /// Whether the request named the queue (the Idempotency-Key fingerprint holds it only then: a kind's queue may
    /// change between a request and its retry).
    #[diesel(skip_insertion)]
    pub queue_requested: bool,
    /// The schedule as the request said it (relative or absolute), for the Idempotency-Key fingerprint: a retried
    /// `delay_ms` request is the same request, though its `not_before` differs.
    #[diesel(skip_insertion)]
    pub schedule: Option<Schedule>,
}

/// When a job may start, as its submitter asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// At this time (`run_at`).
    RunAt(DateTime<Utc>),
    /// This many milliseconds after acceptance (`delay_ms`).
    DelayMs(i64),
}

/// The queue of a job whose request and kind name none.
pub const DEFAULT_QUEUE: &str = "default";

/// The tenant that owns jobs created before tenants existed, and jobs created by internal tools and tests.
pub const DEFAULT_TENANT: Uuid = Uuid::nil();

impl NewJob {
    /// A job of the default tenant with a fresh UUIDv7 id.
    pub fn new(kind: impl Into<String>, payload: serde_json::Value, max_attempts: i32) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind: kind.into(),
            payload,
            max_attempts,
            tenant_id: DEFAULT_TENANT,
            traceparent: None,
            tracestate: None,
            not_before: None,
            timeout_ms: None,
            priority_level: Priority::Normal.as_i16(),
            queue: DEFAULT_QUEUE.to_string(),
            queue_requested: false,
            schedule: None,
            callback_url: None,
        }
    }

    /// The same job, carrying `trace` (the submit span's context) into every dispatch.
    pub fn with_trace(mut self, trace: Option<TraceContext>) -> Self {
        (self.traceparent, self.tracestate) = trace.map_or((None, None), |t| (Some(t.traceparent), t.tracestate));
        self
    }

    /// The same job at `priority`.
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority_level = priority.as_i16();
        self
    }

    /// The same job, owned by `tenant_id`.
    pub fn for_tenant(mut self, tenant_id: Uuid) -> Self {
        self.tenant_id = tenant_id;
        self
    }
}

impl Job {
    /// The job's priority.
    pub fn priority(&self) -> Priority {
        Priority::from_i16(self.priority_level)
    }

    /// The submit's trace context, which every dispatch of this job carries (None for jobs from before migration 7).
    pub fn trace_context(&self) -> Option<TraceContext> {
        TraceContext::from_columns(self.traceparent.as_deref(), self.tracestate.as_deref())
    }

    /// A string field of the last error (`code` or `message`), if there is one.
    pub fn error_field(&self, key: &str) -> Option<&str> {
        self.error.as_ref()?.get(key)?.as_str()
    }

    /// Finds a job by id, whoever owns it (workers, tools, tests).
    pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<Job>> {
        jobs::table.find(id).select(Job::as_select()).first(conn).optional()
    }

    /// Finds jobs by id, in the order of `ids` (ids with no job are left out).
    pub fn find_many(conn: &mut PgConnection, ids: &[Uuid]) -> QueryResult<Vec<Job>> {
        let mut found: Vec<Job> = jobs::table.filter(jobs::id.eq_any(ids)).select(Job::as_select()).load(conn)?;
        let position: std::collections::HashMap<Uuid, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        found.sort_by_key(|j| position.get(&j.id).copied().unwrap_or(usize::MAX));
        Ok(found)
    }

    /// Finds a job by id only if `tenant_id` owns it: another tenant's job is `None`, exactly like a missing one.
    pub fn find_for_tenant(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid) -> QueryResult<Option<Job>> {
        jobs::table.find(id).filter(jobs::tenant_id.eq(tenant_id)).select(Job::as_select()).first(conn).optional()
    }
}

/// Filters of the operator's job listing ([`list_all`]): across tenants, unlike the API's.
#[derive(Clone, Debug, Default)]
pub struct AdminFilter {
    /// Only this status.
    pub status: Option<JobStatus>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this tenant (by name).
    pub tenant: Option<String>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only jobs created at or after this time.
    pub created_after: Option<DateTime<Utc>>,
    /// Only jobs created before this time.
    pub created_before: Option<DateTime<Utc>>,
    /// Only jobs older than this one (the previous page's last id: ids are UUIDv7, so id order is creation order).
    pub before_id: Option<Uuid>,
    /// At most this many, newest first.
    pub limit: i64,
}

/// Jobs of every tenant with the tenant's name, newest first (`ackbox jobs ls`, the dashboard).
pub fn list_all(conn: &mut PgConnection, f: &AdminFilter) -> QueryResult<Vec<(Job, Option<String>)>> {
    use crate::schema::tenants;
    let mut q = jobs::table
        .left_join(tenants::table)
        .select((Job::as_select(), tenants::name.nullable()))
        .order(jobs::id.desc())
        .limit(f.limit)
        .into_boxed();
    if let Some(s) = f.status {
        q = q.filter(jobs::status.eq(s));
    }
    if let Some(k) = &f.kind {
        q = q.filter(jobs::kind.eq(k.clone()));
    }
    if let Some(t) = &f.tenant {
        q = q.filter(tenants::name.eq(t.clone()));
    }
    if let Some(queue) = &f.queue {
        q = q.filter(jobs::queue.eq(queue.clone()));
    }
    if let Some(at) = f.created_after {
        q = q.filter(jobs::created_at.ge(at));
    }
    if let Some(at) = f.created_before {
        q = q.filter(jobs::created_at.lt(at));
    }
    if let Some(id) = f.before_id {
        q = q.filter(jobs::id.lt(id));
    }
    q.load(conn)
}

/// The finished jobs that [`counts_by_status_and_kind`] and [`count_by_status`] count: those of the last hour.
pub const FINISHED_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);

/// The counting query, with a cost that follows the work in flight and the last `FINISHED_WINDOW`, never the
/// table's history: every queued and running job (through `jobs_open_idx`, whose predicate `finished_at IS NULL`
/// holds exactly for them) and the jobs that finished in the window (through `jobs_finished_idx`). `{group}` is the
/// grouping columns.
const BOUNDED_COUNTS: &str = "
    SELECT {group}, count(*) AS n FROM jobs WHERE finished_at IS NULL GROUP BY {group}
    UNION ALL
    SELECT {group}, count(*) AS n FROM jobs
     WHERE finished_at > now() - $1 * interval '1 millisecond' AND status IN ('succeeded', 'failed', 'cancelled')
     GROUP BY {group}";

#[derive(QueryableByName)]
struct KindCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Job counts by status and kind, `(status, kind, count)` ordered by kind then status: every queued and running job,
/// and the succeeded, failed and cancelled ones of the last [`FINISHED_WINDOW`]. Bounded cost: see `BOUNDED_COUNTS` (this module).
pub fn counts_by_status_and_kind(conn: &mut PgConnection) -> QueryResult<Vec<(JobStatus, String, i64)>> {
    let sql = format!("{} ORDER BY kind, status", BOUNDED_COUNTS.replace("{group}", "status, kind"));
    let rows: Vec<KindCount> = diesel::sql_query(sql)
        .bind::<diesel::sql_types::Double, _>(FINISHED_WINDOW.as_secs_f64() * 1000.0)
        .load(conn)?;
    Ok(rows.into_iter().filter_map(|r| Some((r.status.parse().ok()?, r.kind, r.n))).collect())
}

/// The counting statement [`counts_by_status_and_kind`] runs, with its window as a literal (for `EXPLAIN` in tests).
pub fn bounded_counts_sql() -> String {
    BOUNDED_COUNTS.replace("{group}", "status, kind").replace("$1", &format!("{}", FINISHED_WINDOW.as_millis()))
}

#[derive(diesel::QueryableByName)]
struct KindStats {
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::Double)]
    to_start: f64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    run: f64,
}

/// The statement of [`recent_medians`]: the 5,000 jobs that finished most recently within 10 minutes, read through
/// `jobs_finished_idx`, so its cost never grows with the table (it read every job started in the window before).
pub const RECENT_MEDIANS_SQL: &str = "SELECT kind,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at))::float8 AS to_start,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))::float8 AS run
   FROM (SELECT kind, created_at, started_at, finished_at FROM jobs
          WHERE finished_at > now() - interval '10 minutes' AND started_at IS NOT NULL
          ORDER BY finished_at DESC LIMIT 5000) recent
  GROUP BY kind";

/// Median seconds from acceptance to start, and median run time, of the jobs (by kind) that finished in the last 10
/// minutes (the 5,000 most recent: a bounded sample). The API's Retry-After comes from these.
pub fn recent_medians(conn: &mut PgConnection) -> QueryResult<std::collections::HashMap<String, (f64, f64)>> {
    let rows: Vec<KindStats> = diesel::sql_query(RECENT_MEDIANS_SQL).load(conn)?;
    Ok(rows.into_iter().map(|r| (r.kind, (r.to_start, r.run))).collect())
}

/// A page of a tenant's jobs, newest first: keyset pagination over `(tenant_id, id DESC)` (ids are UUIDv7), so a
/// page costs the same however deep it is. `cursor` is the last id of the previous page; `limit` rows at most.
pub fn list_for_tenant(
    conn: &mut PgConnection,
    tenant: uuid::Uuid,
    cursor: Option<uuid::Uuid>,
    status: Option<JobStatus>,
    kind: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Job>> {
    use crate::schema::jobs;
    let mut q = jobs::table.filter(jobs::tenant_id.eq(tenant)).into_boxed();
    if let Some(c) = cursor {
        q = q.filter(jobs::id.lt(c));
    }
    if let Some(s) = status {
        q = q.filter(jobs::status.eq(s));
    }
    if let Some(k) = kind {
        q = q.filter(jobs::kind.eq(k.to_string()));
    }
    q.order(jobs::id.desc()).limit(limit).select(Job::as_select()).load(conn)
}

#[derive(QueryableByName)]
struct StatusCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// How many jobs are in each status (every status, 0 where none), for the relay's gauges: every queued and running
/// job, and the succeeded, failed and cancelled ones of the last [`FINISHED_WINDOW`] (bounded cost, as
/// [`counts_by_status_and_kind`]).
pub fn count_by_status(conn: &mut PgConnection) -> QueryResult<Vec<(JobStatus, i64)>> {
    let counts: Vec<StatusCount> = diesel::sql_query(BOUNDED_COUNTS.replace("{group}", "status"))
        .bind::<diesel::sql_types::Double, _>(FINISHED_WINDOW.as_secs_f64() * 1000.0)
        .load(conn)?;
    Ok(JobStatus::ALL
        .into_iter()
        .map(|s| (s, counts.iter().find(|c| c.status == s.as_str()).map_or(0, |c| c.n)))
        .collect())
}

/// Records one execution of a job in `job_effects` (the `effect` kind does it through `ctx.on_commit`, in the
/// transaction of its success, so a test can count executions).
pub fn record_effect(conn: &mut PgConnection, job_id: uuid::Uuid, attempt: i32) -> QueryResult<()> {
    use crate::schema::job_effects;
    diesel::insert_into(job_effects::table)
        .values((job_effects::job_id.eq(job_id), job_effects::attempt.eq(attempt)))
        .execute(conn)
        .map(|_| ())
}
