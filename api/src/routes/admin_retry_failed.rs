//! `POST /v1/admin/jobs/retry`: an operator (admin key) retries every failed job a filter matches, in bounded
//! batches (one transaction each), as `ackbox jobs retry --kind K --since 1h` does. Only jobs that failed before the
//! request arrived match, so a job failing again meanwhile is not retried twice; a request stops after
//! [`MAX_PER_REQUEST`] jobs and says whether more match.

use ackbox_db::state::{self, RetryFilter};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Admin;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// Jobs per transaction.
const BATCH: i64 = 500;
/// Most jobs one request retries (about 20 transactions): a bigger filter takes more requests (`more: true`).
pub const MAX_PER_REQUEST: usize = 10_000;

/// Which failed jobs to retry. At least one field must narrow it, or `all: true`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryFailed {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this tenant (by name).
    pub tenant: Option<String>,
    /// Only jobs that failed at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Every failed job (required when nothing else narrows the retry).
    #[serde(default)]
    pub all: bool,
}

/// What a bulk retry did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetriedFailed {
    /// Jobs sent back to `queued`, each with a fresh dispatch.
    pub retried: usize,
    /// More failed jobs match: send the same request again.
    pub more: bool,
}

/// Retry every failed job a filter matches (admin).
#[utoipa::path(
    post, path = "/v1/admin/jobs/retry", tag = "admin",
    request_body = RetryFailed,
    responses(
        (status = 200, description = "How many were queued again, and whether more match", body = RetriedFailed),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, unknown or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's tenant is not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Nothing narrows the retry and `all` is not true, or an unknown field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded or the database unreachable; what was retried before stays retried (each batch is its own transaction)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn admin_retry_failed(
    state: web::Data<AppState>,
    _admin: Admin,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let req: RetryFailed =
        serde_json::from_value(body.into_inner()).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let narrowed = req.kind.is_some() || req.queue.is_some() || req.tenant.is_some() || req.since.is_some();
    if !narrowed && !req.all {
        return Err(ApiError::Unprocessable(
            "all: narrow the retry with kind, queue, tenant or since, or say \"all\": true for every failed job".into(),
        ));
    }
    let filter = RetryFilter {
        kind: req.kind,
        tenant: req.tenant,
        failed_after: req.since,
        queue: req.queue,
        ..RetryFilter::before(Utc::now())
    };
    let topic = state.config.topic.clone();
    let (retried, more) = state
        .with_conn(move |c| {
            let mut retried = 0usize;
            loop {
                let n = state::retry_failed_many(c, &filter, BATCH, &topic)?;
                retried += n;
                if (n as i64) < BATCH {
                    return Ok((retried, false));
                }
                if retried >= MAX_PER_REQUEST {
                    return Ok((retried, state::count_failed(c, &filter)? > 0));
                }
            }
        })
        .await?;
    Ok(HttpResponse::Ok().json(RetriedFailed { retried, more }))
}
