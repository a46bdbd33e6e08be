//! `POST /v1/admin/jobs/{id}/cancel`: an operator (admin key) cancels any tenant's job, with the same one-statement
//! cancel a tenant's own `POST /v1/jobs/{id}/cancel` runs.

use ackbox_db::models::Job;
use ackbox_db::state::{self, CancelOutcome};
use actix_web::{web, HttpResponse};

use crate::auth::Admin;
use crate::error::{ApiError, Problem};
use crate::routes::admin_list_jobs::AdminJob;
use crate::routes::parse_job_id;
use crate::state::AppState;

/// Cancel a job (admin).
#[utoipa::path(
    post, path = "/v1/admin/jobs/{id}/cancel", tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "It was queued and is now cancelled", body = AdminJob),
        (status = 202, description = "It is running: a cancel was requested; it ends cancelled when its handler stops", body = AdminJob),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, unknown or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's tenant is not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already finished", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded or the database unreachable; nothing was done", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn admin_cancel_job(
    state: web::Data<AppState>,
    _admin: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_job_id(&id)?;
    let outcome = state
        .with_conn(move |c| {
            // The cancel statement is scoped to a tenant: the job's own.
            let Some(owner) = Job::find(c, id)?.map(|j| j.tenant_id) else { return Ok(CancelOutcome::NotFound) };
            Ok(state::cancel(c, owner, id)?)
        })
        .await?;
    match outcome {
        CancelOutcome::Cancelled(job) => Ok(HttpResponse::Ok().json(AdminJob::new(job, None))),
        CancelOutcome::Requested(job) => Ok(HttpResponse::Accepted().json(AdminJob::new(job, None))),
        CancelOutcome::AlreadyFinished(job) => Err(ApiError::Conflict(format!("job is already {}", job.status))),
        CancelOutcome::NotFound => Err(ApiError::NotFound),
    }
}
