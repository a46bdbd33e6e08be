//! What the API sends and takes, as the client sees it. Kept apart from the server's own types on purpose: a client
//! must not pull in the server's database stack, and unknown fields the server adds later are ignored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Accepted, waiting for a worker (or for its next attempt).
    Queued,
    /// An attempt is running.
    Running,
    /// Done; the result is available.
    Succeeded,
    /// Out of attempts, or a permanent failure.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobStatus {
    /// True once the job will not change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled)
    }

    /// The wire name (`queued`, `running`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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

/// Options of [`Client::submit_with`](crate::Client::submit_with).
#[derive(Clone, Debug, Default)]
pub struct SubmitOptions {
    /// Sent as `Idempotency-Key`: a retried submit with the same key and body returns the first job. With a key the
    /// client also retries the POST itself on 503 and connection errors; without one it never does.
    pub idempotency_key: Option<String>,
    /// Attempts allowed, 1..=100 (server default 3).
    pub max_attempts: Option<i32>,
}
