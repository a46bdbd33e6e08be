//! `POST /v1/admin/jobs/{id}/retry`: an operator (admin key) sends any tenant's failed job back to `queued`, with a
//! fresh dispatch, in one transaction (`ackbox_db::state::retry_failed`, as `ackbox jobs retry ID`).

use ackbox_db::state::{self, RetryOutcome};
use actix_web::{web, HttpResponse};

use crate::auth::Admin;
use crate::error::{ApiError, Problem};
use crate::routes::admin_list_jobs::AdminJob;
use crate::routes::parse_job_id;
use crate::state::AppState;

/// Retry a failed job (admin).
#[utoipa::path(
    post, path = "/v1/admin/jobs/{id}/retry", tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "Queued again: its next attempt gets a fresh dispatch (one more attempt if it had used them all)", body = AdminJob),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, unknown or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's tenant is not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not failed: only failed jobs are retried", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded or the database unreachable; nothing was done", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn admin_retry_job(
    state: web::Data<AppState>,
    _admin: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_job_id(&id)?;
    let default_topic = state.config.topic.clone();
    let outcome = state
        .with_conn(move |c| {
            // Where the job's earlier dispatches went (its kind's topic, say); the api's topic once retention took
            // those rows.
            let topic = ackbox_db::outbox::last_topic(c, id)?.unwrap_or(default_topic);
            Ok(state::retry_failed(c, id, &topic)?)
        })
        .await?;
    match outcome {
        RetryOutcome::Requeued { job, .. } => Ok(HttpResponse::Ok().json(AdminJob::new(job, None))),
        RetryOutcome::NotFailed(job) => {
            Err(ApiError::Conflict(format!("job is {}; only failed jobs are retried", job.status)))
        }
        RetryOutcome::NotFound => Err(ApiError::NotFound),
    }
}
