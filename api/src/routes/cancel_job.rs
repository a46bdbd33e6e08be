//! `POST /v1/jobs/{id}/cancel`: cancel a queued job at once (200), ask a running one to stop (202), refuse a finished
//! one (409). The decision is one atomic statement (`ackbox_db::state::cancel`), so a job moving between `running`
//! and `queued` is never called finished.

use ackbox_db::state::{self, CancelOutcome};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::Tenant;
use crate::document::StatusDocument;
use crate::error::{ApiError, Problem};
use crate::routes::{document_response, parse_job_id};
use crate::state::AppState;

/// Cancel a job.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "Was queued; it is now cancelled and will never start", body = StatusDocument),
        (status = 202, description = "Is running; the cancel is recorded (`cancel_requested: true`) and the job will end `cancelled`, whatever its attempt reports (even a success that races the request), and will never be retried. Its worker is told within milliseconds and stops the handler; a handler that ignores the request still ends `cancelled`. If the worker dies, the job ends `cancelled` when its lease lapses", body = StatusDocument),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, unknown or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job for this tenant (type /problems/not-found: never issued, or another tenant's), or a job of this tenant that finished longer ago than the retention and was deleted (type /problems/expired)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already finished (succeeded, failed or cancelled); nothing changed", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Tenant over its rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded (more than ACKBOX_MAX_IN_FLIGHT requests in flight) or the database unreachable: nothing was done; retry after Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn cancel_job(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = parse_job_id(&id)?;
    let outcome = state
        .with_conn(move |c| match state::cancel(c, tenant.0, id)? {
            // A job retention deleted: finished long ago, so "expired" rather than "no such job".
            CancelOutcome::NotFound if ackbox_db::retention::expired(c, tenant.0, id)? => Err(ApiError::Expired),
            outcome => Ok(outcome),
        })
        .await?;
    match outcome {
        CancelOutcome::Cancelled(job) => Ok(document_response(HttpResponse::Ok(), job, &state, &req)),
        CancelOutcome::Requested(job) => Ok(document_response(HttpResponse::Accepted(), job, &state, &req)),
        CancelOutcome::AlreadyFinished(job) => {
            Err(ApiError::Conflict(format!("job is already {}; it can no longer be cancelled", job.status)))
        }
        CancelOutcome::NotFound => Err(ApiError::NotFound),
    }
}
