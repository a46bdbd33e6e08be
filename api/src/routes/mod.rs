//! The routes table: every endpoint, in one place. One file per handler.

use actix_web::web;

mod get_job;
mod get_job_result;
mod health;
mod submit_job;

use crate::error::ApiError;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .service(
            web::scope("/v1")
                .route("/jobs", web::post().to(submit_job::submit_job))
                .route("/jobs/{id}", web::get().to(get_job::get_job))
                .route("/jobs/{id}/result", web::get().to(get_job_result::get_job_result)),
        )
        .default_service(web::to(not_found));
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// Parses a job id from the path; anything that is not a UUID is a 400, distinct from a well-formed unknown id (404).
pub(crate) fn parse_job_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::try_parse(raw).map_err(|_| ApiError::BadRequest("job id must be a UUID".into()))
}
