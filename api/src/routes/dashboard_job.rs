//! `GET /dashboard/api/jobs/{id}` (admin key): any tenant's job, for the dashboard's lookup box. The payload is
//! left out (only its size is shown): it may hold a tenant's data, and the dashboard is for operations.

use ackbox_db::models::Job;
use ackbox_db::outbox;
use actix_web::{web, HttpResponse};

use crate::auth::Admin;
use crate::error::ApiError;
use crate::routes::parse_job_id;
use crate::state::AppState;

/// Serves the job with its outbox rows.
pub async fn job(state: web::Data<AppState>, _admin: Admin, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = parse_job_id(&id)?;
    let (job, dispatches) = state
        .with_conn(move |c| {
            let job = Job::find(c, id)?.ok_or(ApiError::NotFound)?;
            Ok((job, outbox::for_job(c, id)?))
        })
        .await?;
    let dispatches: Vec<_> = dispatches
        .iter()
        .map(|r| {
            serde_json::json!({"id": r.id, "attempt": r.payload.get("attempt"), "created_at": r.created_at,
                               "published_at": r.published_at, "attempts": r.attempts, "last_error": r.last_error})
        })
        .collect();
    let payload_bytes = job.payload.to_string().len();
    let mut job = serde_json::to_value(&job).map_err(|e| ApiError::Internal(format!("job document: {e}")))?;
    if let Some(fields) = job.as_object_mut() {
        fields.remove("payload");
        fields.insert("payload_bytes".into(), payload_bytes.into());
    }
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({"job": job, "outbox": dispatches})))
}
