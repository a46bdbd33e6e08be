//! `GET /v1/jobs/{id}/result`: the handler's output, once there is one.

use ackbox_shared::models::JobStatus;
use actix_web::{web, HttpResponse};

use crate::error::ApiError;
use crate::routes::get_job::load_job;
use crate::AppState;

/// Handler for `GET /v1/jobs/{id}/result`: 200 with the result when succeeded, 409 before (or when it ended
/// without one), 404 when no such job exists.
pub async fn get_job_result(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let job = load_job(&state, &id).await?;
    match job.status {
        JobStatus::Succeeded => Ok(HttpResponse::Ok().json(job.result.unwrap_or(serde_json::Value::Null))),
        status => Err(ApiError::Conflict(format!("job is {status}; a result exists only once it has succeeded"))),
    }
}
