//! The status document: what `POST /v1/jobs` and `GET /v1/jobs/{id}` return.

use ackbox_shared::models::{Job, JobStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Links a client follows instead of building URLs.
#[derive(Debug, Serialize, Deserialize)]
pub struct Links {
    /// This document.
    #[serde(rename = "self")]
    pub self_: String,
    /// The result (200 once succeeded, 409 before).
    pub result: String,
}

/// A job as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusDocument {
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
    /// Last status change.
    pub updated_at: DateTime<Utc>,
    /// Start of the latest attempt.
    pub started_at: Option<DateTime<Utc>>,
    /// When it became terminal.
    pub finished_at: Option<DateTime<Utc>>,
    /// Output once succeeded.
    pub result: Option<serde_json::Value>,
    /// Last failure (`{"code", "message"}`).
    pub error: Option<serde_json::Value>,
    /// Latest progress report of the running (or last) attempt: `{"percent", "message"}`.
    pub progress: Option<serde_json::Value>,
    /// Where to look next.
    pub links: Links,
}

/// Path of a job's status document.
pub fn job_path(id: Uuid) -> String {
    format!("/v1/jobs/{id}")
}

impl From<Job> for StatusDocument {
    fn from(job: Job) -> Self {
        let self_ = job_path(job.id);
        let result = format!("{self_}/result");
        Self {
            id: job.id,
            kind: job.kind,
            status: job.status,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            created_at: job.created_at,
            updated_at: job.updated_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            result: job.result,
            error: job.error,
            progress: job.progress,
            links: Links { self_, result },
        }
    }
}
