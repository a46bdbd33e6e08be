//! `GET /v1/jobs/{id}/result`: the handler's output, once there is one.

use ackbox_db::models::JobStatus;
use actix_web::{web, HttpResponse};

use crate::auth::Tenant;
use crate::error::{ApiError, Problem};
use crate::routes::{load_job, parse_job_id};
use crate::state::AppState;

/// Get a job's result.
#[utoipa::path(
    get, path = "/v1/jobs/{id}/result", tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "The result the handler returned (any JSON)", body = serde_json::Value),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, unknown or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job for this tenant (type /problems/not-found: never issued, or another tenant's), or a job of this tenant that finished longer ago than the retention and was deleted (type /problems/expired)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not succeeded (yet)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Tenant over its rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded (more than ACKBOX_MAX_IN_FLIGHT requests in flight) or the database unreachable: nothing was done; retry after Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_job_result(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = load_job(&state, tenant.0, parse_job_id(&id)?).await?;
    match job.status {
        JobStatus::Succeeded => Ok(HttpResponse::Ok().json(job.result.unwrap_or(serde_json::Value::Null))),
        status => Err(ApiError::Conflict(format!("job is {status}; a result exists only once it has succeeded"))),
    }
}
