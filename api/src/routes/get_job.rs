//! `GET /v1/jobs/{id}`: the status document.

use ackbox_shared::models::Job;
use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::document::StatusDocument;
use crate::error::ApiError;
use crate::routes::parse_job_id;
use crate::AppState;

/// Loads a job on the blocking pool; `NotFound` when no such id exists.
pub(crate) async fn load_job(state: &AppState, raw_id: &str) -> Result<Job, ApiError> {
    let id = parse_job_id(raw_id)?;
    let pool = state.pool.clone();
    web::block(move || -> Result<_, ApiError> {
        let mut conn = pool.get().map_err(ackbox_shared::db::DbError::from)?;
        Ok(Job::find(&mut conn, id)?)
    })
    .await??
    .ok_or(ApiError::NotFound)
}

/// Handler for `GET /v1/jobs/{id}`. Adds `Retry-After` while the job is not terminal.
pub async fn get_job(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let job = load_job(&state, &id).await?;
    let mut resp = HttpResponse::Ok();
    if !job.status.is_terminal() {
        resp.insert_header((header::RETRY_AFTER, state.config.retry_after_secs.to_string()));
    }
    Ok(resp.json(StatusDocument::from(job)))
}
