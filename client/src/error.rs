//! Typed errors: every problem+json the API sends maps to one variant, so callers match on what happened rather
//! than on status codes.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::types::{Job, JobStatus};

/// RFC 9457 problem details, as the API sends them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Stable URI of the error kind, e.g. `/problems/not-found`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Short summary of the error kind.
    #[serde(default)]
    pub title: String,
    /// HTTP status code.
    #[serde(default)]
    pub status: u16,
    /// What went wrong with this request.
    #[serde(default)]
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.detail.is_empty() {
            write!(f, "{}", self.title)
        } else {
            write!(f, "{}", self.detail)
        }
    }
}

/// Everything a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400: the request is malformed (bad id, bad query parameter, not JSON).
    #[error("bad request: {0}")]
    BadRequest(Problem),
    /// 401: missing, unknown or revoked API key.
    #[error("unauthorized: {0} (check the API key)")]
    Unauthorized(Problem),
    /// 404: no such job for this tenant (also what another tenant's job looks like).
    #[error("not found: {0}")]
    NotFound(Problem),
    /// 409: not possible in the job's current state (a result before success, a cancel after the end, an
    /// idempotency key still being processed).
    #[error("conflict: {0}")]
    Conflict(Problem),
    /// 413: the body is over the server's limit.
    #[error("payload too large: {0}")]
    PayloadTooLarge(Problem),
    /// 422: well-formed but invalid (unknown kind, bad payload, an idempotency key reused with another body).
    #[error("invalid request: {0}")]
    Invalid(Problem),
    /// 429: the tenant is over its rate limit.
    #[error("rate limited: {problem}")]
    RateLimited {
        /// The body.
        problem: Problem,
        /// `Retry-After`, if sent.
        retry_after: Option<Duration>,
    },
    /// 503 after the client's retries: the API cannot reach its database.
    #[error("service unavailable: {0}")]
    Unavailable(Problem),
    /// Any other status.
    #[error("HTTP {status}: {problem}")]
    Api {
        /// HTTP status code.
        status: u16,
        /// The body (empty fields if it was not problem+json).
        problem: Problem,
    },
    /// The request did not complete (connection refused, reset, timed out), after the client's retries where the
    /// request was safe to retry.
    #[error("transport error: {0}")]
    Transport(#[from] reqwest::Error),
    /// A success response whose body was not what the API documents.
    #[error("unexpected response body: {0}")]
    Decode(String),
    /// [`Client::wait`](crate::Client::wait) ran out of time before the job finished.
    #[error("job {id} is still {status} after {waited:?}")]
    WaitTimeout {
        /// The job.
        id: Uuid,
        /// Its status at the deadline.
        status: JobStatus,
        /// How long the client waited.
        waited: Duration,
        /// The last status document seen.
        job: Box<Job>,
    },
    /// The client was built with an unusable setting.
    #[error("client configuration: {0}")]
    Config(String),
}

impl Error {
    /// Maps a non-success status and its problem body to a variant.
    pub(crate) fn from_status(status: u16, problem: Problem, retry_after: Option<Duration>) -> Self {
        match status {
            400 => Error::BadRequest(problem),
            401 => Error::Unauthorized(problem),
            404 => Error::NotFound(problem),
            409 => Error::Conflict(problem),
            413 => Error::PayloadTooLarge(problem),
            422 => Error::Invalid(problem),
            429 => Error::RateLimited { problem, retry_after },
            503 => Error::Unavailable(problem),
            _ => Error::Api { status, problem },
        }
    }

    /// The problem body, for variants that have one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::BadRequest(p)
            | Error::Unauthorized(p)
            | Error::NotFound(p)
            | Error::Conflict(p)
            | Error::PayloadTooLarge(p)
            | Error::Invalid(p)
            | Error::Unavailable(p)
            | Error::RateLimited { problem: p, .. }
            | Error::Api { problem: p, .. } => Some(p),
            _ => None,
        }
    }
}
