//! What the API sends and takes, as the client sees it. `JobStatus` is the server's own (from `ackbox-types`, serde
//! only, so no database stack comes with it); the status document is read leniently: unknown fields the server adds
//! later are ignored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a job is in its life: the server's own type, from the serde-only `ackbox-types`.
pub use ackbox_types::status::JobStatus;

/// A job's priority: the server's own type, from `ackbox-types`.
pub use ackbox_types::priority::Priority;

/// A job's status document (`GET /v1/jobs/{id}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Job id.
    pub id: Uuid,
    /// Handler kind.
    pub kind: String,
    /// Current status.
    pub status: JobStatus,
    /// Attempts started.
    pub attempts: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// When the job was accepted.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Start of the latest attempt.
    pub started_at: Option<DateTime<Utc>>,
    /// When it became terminal.
    pub finished_at: Option<DateTime<Utc>>,
    /// While queued: not started before this time (its `run_at` / `delay_ms`, or a retry's backoff).
    #[serde(default)]
    pub not_before: Option<DateTime<Utc>>,
    /// The handler timeout this job asked for, in milliseconds (`None`: the worker's default).
    #[serde(default)]
    pub timeout_ms: Option<i32>,
    /// `high`, `normal` or `low` (`normal` from a server before priorities).
    #[serde(default)]
    pub priority: Priority,
    /// The queue it belongs to (empty from a server before queues).
    #[serde(default)]
    pub queue: String,
    /// Output once succeeded.
    pub result: Option<serde_json::Value>,
    /// Last failure (`{"code", "message"}`).
    pub error: Option<serde_json::Value>,
    /// Latest progress report (`{"percent", "message"}`).
    pub progress: Option<serde_json::Value>,
    /// True once a cancel was requested for a running job.
    #[serde(default)]
    pub cancel_requested: bool,
    /// The server's polling hint in seconds (null once terminal).
    pub retry_after_seconds: Option<u64>,
    /// True when the job has waited in `queued` longer than the server's bound.
    #[serde(default)]
    pub overdue: bool,
    /// Its completion callback, when it was submitted with a `callback_url`.
    #[serde(default)]
    pub callback: Option<Callback>,
}

/// Where a job's completion callback stands (the status document's `callback`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Callback {
    /// Where the status document is POSTed when the job ends.
    pub url: String,
    /// `waiting` (not ended), `pending` (being delivered or retried), `delivered` or `failed` (given up).
    pub state: String,
    /// Delivery attempts so far.
    pub attempts: i32,
    /// Why the latest attempt failed.
    pub last_error: Option<String>,
}

impl Job {
    /// `progress.percent`, when the handler reported one.
    pub fn percent(&self) -> Option<f64> {
        self.progress.as_ref()?.get("percent")?.as_f64()
    }

    /// `progress.message`, when the handler reported one.
    pub fn progress_message(&self) -> Option<&str> {
        self.progress.as_ref()?.get("message")?.as_str()
    }
}

/// A page of [`Client::list`](crate::Client::list).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobPage {
    /// Jobs, newest first.
    pub items: Vec<Job>,
    /// Pass as [`ListOptions::cursor`] for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Filters and paging of [`Client::list`](crate::Client::list).
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// Page size, 1..=100 (server default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One job of [`Client::submit_batch`](crate::Client::submit_batch): what a `POST /v1/jobs` body holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchJob {
    /// Handler kind.
    pub kind: String,
    /// Handler input (`{}` when absent).
    #[serde(default = "empty_object")]
    pub payload: serde_json::Value,
    /// Attempts allowed, 1..=100 (server default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<i32>,
    /// Run at this time, not before (at most one of `run_at` and `delay_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
    /// Run this many milliseconds after acceptance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// This job's handler timeout in milliseconds (at most 24 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// `high`, `normal` or `low` (server default `normal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// The queue (must exist); `None`: the kind's queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Where the status document is POSTed when the job ends (signed; see [`Client::callback_secret`](crate::Client::callback_secret)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

impl BatchJob {
    /// A job of `kind` with `payload`.
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> Self {
        Self {
            kind: kind.into(),
            payload,
            max_attempts: None,
            run_at: None,
            delay_ms: None,
            timeout_ms: None,
            priority: None,
            queue: None,
            callback_url: None,
        }
    }
}

/// The body of a batch's 202.
#[derive(Debug, Deserialize)]
pub(crate) struct BatchAccepted {
    pub(crate) jobs: Vec<Job>,
}

/// Options of [`Client::submit_with`](crate::Client::submit_with).
#[derive(Clone, Debug, Default)]
pub struct SubmitOptions {
    /// Sent as `Idempotency-Key`: a retried submit with the same key and body returns the first job. With a key the
    /// client also retries the POST itself on 503 and connection errors; without one it never does.
    pub idempotency_key: Option<String>,
    /// Attempts allowed, 1..=100 (server default 3).
    pub max_attempts: Option<i32>,
    /// Run at this time, not before: the job is accepted (and readable) at once, `queued` until then. At most one
    /// of `run_at` and `delay`.
    pub run_at: Option<DateTime<Utc>>,
    /// Run this long after acceptance (whole milliseconds).
    pub delay: Option<std::time::Duration>,
    /// This job's handler timeout (whole milliseconds; at most 24 h); `None`: the worker's default.
    pub timeout: Option<std::time::Duration>,
    /// `high` jobs are dispatched and claimed before `normal` ones, and `normal` before `low`, whenever work waits;
    /// `None`: `normal`.
    pub priority: Option<Priority>,
    /// The queue the job belongs to (it must exist: `Error::Invalid` otherwise); `None`: its kind's queue.
    pub queue: Option<String>,
    /// When the job ends, its status document is POSTed here, signed with the tenant's secret
    /// ([`Client::callback_secret`](crate::Client::callback_secret)); a target inside the server's network is
    /// `Error::Invalid`.
    pub callback_url: Option<String>,
}
