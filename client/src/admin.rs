//! Operator calls (a client built with an **admin key**, `ackbox keys create --tenant ops --admin`): every tenant's
//! jobs, and retry and cancel of any of them, as the dashboard's *Jobs* panel does. A key of a tenant that is not an
//! admin gets [`Error::Api`] with status 403.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{decode, Client, Error, JobStatus, Priority};

/// A job as an operator sees it (`GET /v1/admin/jobs`): its owner and where it stands, never its payload or result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminJob {
    /// Job id.
    pub id: Uuid,
    /// The owning tenant's name (absent in the answer to a retry or cancel).
    pub tenant: Option<String>,
    /// Handler kind.
    pub kind: String,
    /// Queue.
    pub queue: String,
    /// Priority.
    pub priority: Priority,
    /// Status.
    pub status: JobStatus,
    /// Attempts started.
    pub attempts: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Accepted at.
    pub created_at: DateTime<Utc>,
    /// Latest attempt's start.
    pub started_at: Option<DateTime<Utc>>,
    /// Ended at.
    pub finished_at: Option<DateTime<Utc>>,
    /// Last failure (`{"code", "message"}`).
    pub error: Option<serde_json::Value>,
    /// A cancel was requested while it ran.
    pub cancel_requested: bool,
}

/// A page of [`Client::admin_jobs`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdminJobPage {
    /// Newest first.
    pub items: Vec<AdminJob>,
    /// Pass as [`AdminListOptions::cursor`] for the next page; `None` on the last.
    pub next_cursor: Option<Uuid>,
}

/// Filters and paging of [`Client::admin_jobs`].
#[derive(Clone, Debug, Default)]
pub struct AdminListOptions {
    /// Only this status.
    pub status: Option<JobStatus>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this tenant (by name).
    pub tenant: Option<String>,
    /// Only jobs accepted at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only jobs accepted before this time.
    pub until: Option<DateTime<Utc>>,
    /// Page size, 1..=200 (server default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// Which failed jobs [`Client::admin_retry_failed`] retries: at least one field, or `all`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RetryFailedFilter {
    /// Only this kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Only this queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Only this tenant (by name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Only jobs that failed at or after this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Every failed job (needed when nothing else narrows it).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

#[derive(Deserialize)]
struct Retried {
    retried: usize,
    more: bool,
}

impl Client {
    /// One page of every tenant's jobs, newest first.
    pub async fn admin_jobs(&self, opts: &AdminListOptions) -> Result<AdminJobPage, Error> {
        let mut query: Vec<(&str, String)> = Vec::new();
        let mut add = |name, value: Option<String>| {
            if let Some(v) = value {
                query.push((name, v));
            }
        };
        add("status", opts.status.map(|s| s.as_str().to_string()));
        add("kind", opts.kind.clone());
        add("queue", opts.queue.clone());
        add("tenant", opts.tenant.clone());
        add("since", opts.since.map(|t| t.to_rfc3339()));
        add("until", opts.until.map(|t| t.to_rfc3339()));
        add("limit", opts.limit.map(|l| l.to_string()));
        add("cursor", opts.cursor.map(|c| c.to_string()));
        let resp = self.execute(true, || self.request(Method::GET, "/v1/admin/jobs").query(&query)).await?;
        decode(resp).await
    }

    /// Puts a failed job back to `queued` with a fresh dispatch. A job that is not failed is [`Error::Conflict`].
    /// Not retried on 503 or a lost answer: a second retry of a job the first one requeued would be a conflict.
    pub async fn admin_retry(&self, id: Uuid) -> Result<AdminJob, Error> {
        let path = format!("/v1/admin/jobs/{id}/retry");
        decode(self.execute(false, || self.request(Method::POST, &path)).await?).await
    }

    /// Cancels any tenant's job: queued ends `cancelled` at once, running gets a cancel request; a finished job is
    /// [`Error::Conflict`].
    pub async fn admin_cancel(&self, id: Uuid) -> Result<AdminJob, Error> {
        let path = format!("/v1/admin/jobs/{id}/cancel");
        decode(self.execute(false, || self.request(Method::POST, &path)).await?).await
    }

    /// Retries every failed job `filter` matches (each request up to 10,000, in transactions of 500; this sends
    /// requests until none match) and returns how many were queued again. An unnarrowed filter without `all` is
    /// [`Error::Invalid`].
    pub async fn admin_retry_failed(&self, filter: &RetryFailedFilter) -> Result<usize, Error> {
        let mut total = 0;
        loop {
            let resp = self.execute(false, || self.request(Method::POST, "/v1/admin/jobs/retry").json(filter)).await?;
            let r: Retried = decode(resp).await?;
            total += r.retried;
            if !r.more {
                return Ok(total);
            }
        }
    }
}
