//! The status document: what `POST /v1/jobs`, `GET /v1/jobs/{id}`, cancel and list return for a job.

use ackbox_db::models::{Job, JobStatus, Priority};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::estimates::Estimates;

/// Links a client follows instead of building URLs. All are absolute (`ACKBOX_PUBLIC_URL`, or the request's own
/// scheme and host).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Links {
    /// This document.
    #[serde(rename = "self")]
    pub self_: String,
    /// The result (200 once succeeded, 409 before).
    pub result: String,
    /// Where to POST a cancel.
    pub cancel: String,
    /// The Azure-style status monitor of this job (the 202's `Operation-Location`).
    pub monitor: String,
    /// This job as a `google.longrunning.Operation` (AIP-151).
    pub operation: String,
}

impl Links {
    /// The links of job `id` under the external base URL `base` (no trailing `/`).
    pub fn new(base: &str, id: Uuid) -> Self {
        let self_ = format!("{base}{}", job_path(id));
        Self {
            result: format!("{self_}/result"),
            cancel: format!("{self_}/cancel"),
            monitor: format!("{base}{}", monitor_path(id)),
            operation: format!("{self_}/operation"),
            self_,
        }
    }
}

/// A job as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatusDocument {
    /// Job id (UUIDv7).
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
    /// While queued: not started before this time (its `run_at` / `delay_ms`, or a retry's backoff); null otherwise.
    pub not_before: Option<DateTime<Utc>>,
    /// The handler timeout this job asked for, in milliseconds (null: the worker's default).
    pub timeout_ms: Option<i32>,
    /// `high`, `normal` or `low`: whenever work waits, a higher priority is dispatched and claimed first.
    #[schema(value_type = String, pattern = "^(high|normal|low)$", example = "normal")]
    #[serde(default)]
    pub priority: Priority,
    /// The queue it belongs to.
    #[serde(default)]
    pub queue: String,
    /// Output once succeeded.
    pub result: Option<serde_json::Value>,
    /// Last failure (`{"code", "message"}`).
    pub error: Option<serde_json::Value>,
    /// Latest progress report of the running (or last) attempt: `{"percent", "message"}`.
    pub progress: Option<serde_json::Value>,
    /// True once a cancel was requested for a running job.
    pub cancel_requested: bool,
    /// Seconds a client should wait before polling again (null once terminal). Computed from the observed
    /// time-to-start (queued) or run time (running) of recent jobs of this kind, clamped to [1, 60]; never shorter
    /// than a retry backoff the job still has to wait.
    pub retry_after_seconds: Option<u64>,
    /// True when the job has waited in `queued` longer than the configured bound since it became due (submitted,
    /// requeued, or its retry backoff over): this is no longer "be patient", it is "something is wrong".
    pub overdue: bool,
    /// What to do about an overdue job (null otherwise).
    pub overdue_message: Option<String>,
    /// Why a queued job is not running yet, when Ackbox knows (null otherwise): its queue is paused, no live worker
    /// runs its kind (both as of the last 10 s), or a worker without a handler for its kind received it. The job stays safely queued either way
    /// and runs once a worker with the kind is up.
    pub waiting_reason: Option<String>,
    /// The completion callback, when the job was submitted with a `callback_url` (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<CallbackStatus>,
    /// Where to look next.
    pub links: Links,
    /// Once succeeded: the absolute URL of the result (`links.result`), under the name the Azure REST API guidelines
    /// give it, so an Azure-style client that reads this document finds the result where it looks. Absent before.
    #[serde(rename = "resourceLocation", skip_serializing_if = "Option::is_none")]
    pub resource_location: Option<String>,
}

/// Where a job's completion callback stands.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CallbackStatus {
    /// Where the status document is POSTed when the job ends.
    pub url: String,
    /// `waiting` (the job has not ended), `pending` (being delivered, or waiting out a retry's backoff),
    /// `delivered` (the receiver answered 2xx), `failed` (every attempt failed; given up). After an operator retry,
    /// the state is that of the latest end's callback.
    #[schema(pattern = "^(waiting|pending|delivered|failed)$", example = "delivered")]
    pub state: String,
    /// Delivery attempts so far (of the latest end's callback).
    pub attempts: i32,
    /// Why the latest attempt failed (null once delivered).
    pub last_error: Option<String>,
}

impl CallbackStatus {
    /// The callback of `job`, if it has one.
    fn of(job: &Job) -> Option<Self> {
        let url = job.callback_url.clone()?;
        Some(Self {
            url,
            state: match (&job.callback_state, job.status.is_terminal()) {
                (Some(state), true) => state.clone(),
                // Before the end (or an operator retry put it back): the last end's outcome is history.
                _ => "waiting".to_string(),
            },
            attempts: if job.status.is_terminal() { job.callback_attempts } else { 0 },
            last_error: job.callback_last_error.clone().filter(|_| job.status.is_terminal()),
        })
    }
}

/// Path of a job's status document.
pub fn job_path(id: Uuid) -> String {
    format!("/v1/jobs/{id}")
}

/// Path of a job's Azure-style status monitor (`Operation-Location`).
pub fn monitor_path(id: Uuid) -> String {
    format!("/v1/operations/{id}")
}

/// The honest polling hint for a job: null when terminal; else the median wait of recent similar jobs, in [1, 60],
/// but never shorter than a retry backoff still to wait (`not_before`), however long that is.
pub fn retry_after(job: &Job, estimates: &Estimates) -> Option<u64> {
    if job.status.is_terminal() {
        return None;
    }
    let (to_start, run) = estimates.get(&job.kind).unwrap_or((1.0, 1.0));
    let secs = if job.status == JobStatus::Queued { to_start } else { run };
    let hint = (secs.ceil() as u64).clamp(1, 60);
    let backoff_left = match job.not_before {
        Some(at) if job.status == JobStatus::Queued => (at - Utc::now()).num_milliseconds().max(0) as u64,
        _ => 0,
    };
    Some(hint.max(backoff_left.div_ceil(1000)))
}

/// When a queued job became due: its submission, its requeue after a lost lease or an operator retry (`updated_at`),
/// or the end of its retry backoff (`not_before`), whichever is last. `overdue` counts from here, so a job waiting
/// out a normal backoff is never called overdue.
pub fn due_since(job: &Job) -> DateTime<Utc> {
    job.not_before.map_or(job.updated_at, |nb| nb.max(job.updated_at))
}

/// Why a queued job waits, if something other than its turn holds it up.
fn waiting_reason(job: &Job, estimates: &Estimates) -> Option<String> {
    if job.status != JobStatus::Queued {
        return None;
    }
    if estimates.queue_is_paused(&job.queue) {
        return Some(format!(
            "its queue {:?} is paused: the job waits safely and runs once the queue is resumed (ackbox queues resume)",
            job.queue
        ));
    }
    if estimates.kind_is_live(&job.kind) == Some(false) {
        return Some(format!(
            "no live worker runs kind {:?}: the job waits safely in the queue and runs when a worker with this kind \
             starts",
            job.kind
        ));
    }
    job.dispatch_skipped_at.map(|at| {
        format!(
            "a worker without a handler for kind {:?} received it at {}: it is dispatched again when a worker that \
             runs this kind starts (fleets with different kinds belong on different topics: ACKBOX_KIND_TOPICS)",
            job.kind,
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        )
    })
}

/// An entity tag of the document exactly as served: it changes whenever any field does (status, progress, but also
/// `overdue`, its message and `retry_after_seconds`, which change with time alone).
pub fn etag(doc: &StatusDocument) -> String {
    let mut h = Sha256::new();
    // Serialising the document cannot fail: it holds only strings, numbers, timestamps and JSON values.
    h.update(serde_json::to_vec(doc).unwrap_or_default());
    format!("\"{}\"", hex::encode(&h.finalize()[..12]))
}

/// The job as it was when first accepted: what an Idempotency-Key replay answers (the IETF Idempotency-Key draft:
/// a retried request gets the result of the first one). Its current state is one GET away. Answering the current
/// state instead would hand an Azure-style poller, which reads `status` from the 202 itself, a `failed` job as a
/// finished operation without an error.
pub fn as_accepted(mut job: Job) -> Job {
    job.status = JobStatus::Queued;
    // A job that has not started still has the schedule it was accepted with; after an attempt, not_before is a
    // retry's backoff, not part of the first answer.
    let schedule = if job.attempts == 0 { job.not_before } else { None };
    job.attempts = 0;
    job.updated_at = job.created_at;
    (job.started_at, job.finished_at, job.not_before, job.lease_expires_at) = (None, None, schedule, None);
    (job.result, job.error, job.progress) = (None, None, None);
    (job.cancel_requested_at, job.dispatch_skipped_at) = (None, None);
    (job.callback_state, job.callback_attempts, job.callback_last_error) = (None, 0, None);
    job
}

impl StatusDocument {
    /// [`StatusDocument::new`] of [`as_accepted`]: the 202 of the first request, answered again.
    pub fn replay(job: Job, estimates: &Estimates, base: &str) -> Self {
        let mut doc = Self::new(as_accepted(job), estimates, std::time::Duration::MAX, base);
        doc.waiting_reason = None;
        doc
    }

    /// Builds the document; `overdue_after` is the configured bound for queued jobs, `base` the external base URL
    /// of its links.
    pub fn new(job: Job, estimates: &Estimates, overdue_after: std::time::Duration, base: &str) -> Self {
        let retry_after_seconds = retry_after(&job, estimates);
        let waited = (Utc::now() - due_since(&job)).to_std().unwrap_or_default();
        let overdue = job.status == JobStatus::Queued && waited > overdue_after;
        let waiting_reason = waiting_reason(&job, estimates);
        let links = Links::new(base, job.id);
        let callback = CallbackStatus::of(&job);
        Self {
            callback,
            resource_location: (job.status == JobStatus::Succeeded).then(|| links.result.clone()),
            links,
            id: job.id,
            kind: job.kind,
            status: job.status,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            created_at: job.created_at,
            updated_at: job.updated_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            not_before: job.not_before.filter(|_| job.status == JobStatus::Queued),
            timeout_ms: job.timeout_ms,
            priority: Priority::from_i16(job.priority_level),
            queue: job.queue,
            result: job.result,
            error: job.error,
            progress: job.progress,
            cancel_requested: job.cancel_requested_at.is_some(),
            retry_after_seconds,
            overdue,
            waiting_reason,
            overdue_message: overdue.then(|| {
                format!(
                    "This job has waited in the queue for {} s since it became due, longer than the expected {} s. \
                     It is safe in the database and will run, but the workers are behind or stopped: contact \
                     support with its id.",
                    waited.as_secs(),
                    overdue_after.as_secs()
                )
            }),
        }
    }
}
