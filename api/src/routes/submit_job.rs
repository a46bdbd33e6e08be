//! `POST /v1/jobs`: accept a job. The job row and its outbox row commit in ONE transaction before the 202 is sent,
//! so every id we hand out can be read back at once.

use ackbox_shared::models::NewJob;
use ackbox_shared::state;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::document::{job_path, StatusDocument};
use crate::error::ApiError;
use crate::AppState;

/// Longest accepted `kind`.
pub const MAX_KIND_LEN: usize = 128;
/// Attempts a client may ask for at most.
pub const MAX_ATTEMPTS_LIMIT: i32 = 100;
/// Attempts when the client does not say.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// Handler kind.
    pub kind: String,
    /// Handler input; `{}` when absent.
    #[serde(default = "empty_object")]
    pub payload: serde_json::Value,
    /// Attempts allowed, 1..=100.
    pub max_attempts: Option<i32>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

impl SubmitJob {
    /// Checks the values serde cannot; the message names the field.
    pub fn validate(self) -> Result<NewJob, ApiError> {
        let kind_ok = !self.kind.is_empty()
            && self.kind.len() <= MAX_KIND_LEN
            && self.kind.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
        if !kind_ok {
            return Err(ApiError::Unprocessable(format!(
                "kind: must be 1 to {MAX_KIND_LEN} characters of letters, digits, '_', '-', '.' or ':'"
            )));
        }
        let max_attempts = self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&max_attempts) {
            return Err(ApiError::Unprocessable(format!("max_attempts: must be between 1 and {MAX_ATTEMPTS_LIMIT}")));
        }
        Ok(NewJob::new(self.kind, self.payload, max_attempts))
    }
}

/// Handler for `POST /v1/jobs`.
pub async fn submit_job(state: web::Data<AppState>, body: web::Json<SubmitJob>) -> Result<HttpResponse, ApiError> {
    let new = body.into_inner().validate()?;
    let pool = state.pool.clone();
    let topic = state.config.topic.clone();
    let job = web::block(move || -> Result<_, ApiError> {
        let mut conn = pool.get().map_err(ackbox_shared::db::DbError::from)?;
        Ok(state::submit(&mut conn, &new, &topic)?)
    })
    .await??;
    // Committed: from here on the id is durable and a GET finds it.
    log::debug!("job {} ({}) accepted", job.id, job.kind);
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, job_path(job.id)))
        .insert_header((header::RETRY_AFTER, state.config.retry_after_secs.to_string()))
        .json(StatusDocument::from(job)))
}
