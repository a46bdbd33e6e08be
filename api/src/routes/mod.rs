//! The routes table: every endpoint, in one place. One file per handler.

use ackbox_db::models::Job;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};

mod admin_cancel_job;
pub mod admin_list_jobs;
mod admin_retry_failed;
mod admin_retry_job;
mod cancel_job;
mod dashboard_job;
mod dashboard_page;
mod dashboard_summary;
mod get_callback_secret;
mod get_job;
mod get_job_operation;
mod get_job_result;
mod get_status_monitor;
mod health;
mod list_jobs;
pub(crate) mod openapi;
mod submit_batch;
mod submit_job;

pub(crate) use get_job::prefer_wait;
pub use list_jobs::{JobList, ListParams};
pub use submit_batch::{BatchAccepted, SubmitBatch, MAX_BATCH_JOBS};
pub use submit_job::{fingerprint, valid_kind, SubmitJob};

use crate::document::{etag, StatusDocument};
use crate::error::ApiError;
use crate::state::AppState;

/// Registers every route; `max_batch_body` bounds `POST /v1/jobs/batch`'s body (the others take the app's limit).
pub fn configure(cfg: &mut web::ServiceConfig, max_batch_body: usize) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/openapi.json", web::get().to(openapi::openapi_json))
        .route("/dashboard", web::get().to(dashboard_page::page))
        .route("/dashboard/app.js", web::get().to(dashboard_page::script))
        .route("/dashboard/app.css", web::get().to(dashboard_page::style))
        .route("/dashboard/api/summary", web::get().to(dashboard_summary::summary))
        .route("/dashboard/api/jobs/{id}", web::get().to(dashboard_job::job))
        .service(
            web::scope("/v1")
                .service(
                    web::resource("/jobs")
                        .route(web::post().to(submit_job::submit_job))
                        .route(web::get().to(list_jobs::list_jobs))
                        .default_service(web::to(|| method_not_allowed("GET, POST"))),
                )
                .service(
                    web::resource("/jobs/batch")
                        // A batch's body may be larger than a single job's (ACKBOX_MAX_BATCH_BODY_BYTES).
                        .app_data(
                            web::JsonConfig::default()
                                .limit(max_batch_body)
                                .content_type_required(true)
                                .error_handler(crate::error::json_error),
                        )
                        .route(web::post().to(submit_batch::submit_batch))
                        // Before the body is read: a batch waiting for its slot holds its connection, not its jobs.
                        .wrap(actix_web::middleware::from_fn(crate::shed::limit_batches))
                        .default_service(web::to(|| method_not_allowed("POST"))),
                )
                .service(
                    web::resource("/jobs/{id}")
                        .route(web::get().to(get_job::get_job))
                        .default_service(web::to(|| method_not_allowed("GET"))),
                )
                .service(
                    web::resource("/jobs/{id}/result")
                        .route(web::get().to(get_job_result::get_job_result))
                        .default_service(web::to(|| method_not_allowed("GET"))),
                )
                .service(
                    web::resource("/jobs/{id}/operation")
                        .route(web::get().to(get_job_operation::get_job_operation))
                        .default_service(web::to(|| method_not_allowed("GET"))),
                )
                .service(
                    web::resource("/operations/{id}")
                        .route(web::get().to(get_status_monitor::get_status_monitor))
                        .default_service(web::to(|| method_not_allowed("GET"))),
                )
                .service(
                    web::resource("/jobs/{id}/cancel")
                        .route(web::post().to(cancel_job::cancel_job))
                        .default_service(web::to(|| method_not_allowed("POST"))),
                )
                .service(
                    web::resource("/admin/jobs")
                        .route(web::get().to(admin_list_jobs::admin_list_jobs))
                        .default_service(web::to(|| method_not_allowed("GET"))),
                )
                .service(
                    web::resource("/admin/jobs/retry")
                        .route(web::post().to(admin_retry_failed::admin_retry_failed))
                        .default_service(web::to(|| method_not_allowed("POST"))),
                )
                .service(
                    web::resource("/admin/jobs/{id}/retry")
                        .route(web::post().to(admin_retry_job::admin_retry_job))
                        .default_service(web::to(|| method_not_allowed("POST"))),
                )
                .service(
                    web::resource("/admin/jobs/{id}/cancel")
                        .route(web::post().to(admin_cancel_job::admin_cancel_job))
                        .default_service(web::to(|| method_not_allowed("POST"))),
                )
                .service(
                    web::resource("/callbacks/secret")
                        .route(web::get().to(get_callback_secret::get_callback_secret))
                        .default_service(web::to(|| method_not_allowed("GET"))),
                ),
        )
        .default_service(web::to(not_found));
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute)
}

/// 405 with `Allow` for a method a known path does not take.
async fn method_not_allowed(allow: &'static str) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(allow))
}

/// Parses a job id from the path; anything that is not a UUID is a 400, distinct from a well-formed unknown id (404).
pub(crate) fn parse_job_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::try_parse(raw).map_err(|_| ApiError::BadRequest("job id must be a UUID".into()))
}

/// Loads a tenant's job on the blocking pool; `NotFound` when no such id exists for this tenant, whoever else may
/// own it; `Expired` when it was this tenant's and retention deleted it.
pub(crate) async fn load_job(state: &AppState, tenant: uuid::Uuid, id: uuid::Uuid) -> Result<Job, ApiError> {
    state
        .with_conn(move |c| match Job::find_for_tenant(c, tenant, id)? {
            Some(job) => Ok(job),
            None if ackbox_db::retention::expired(c, tenant, id)? => Err(ApiError::Expired),
            None => Err(ApiError::NotFound),
        })
        .await
}

/// A status-document response: the body plus `ETag`, and `Retry-After` while the job is not terminal.
pub(crate) fn document_response(
    builder: HttpResponseBuilder,
    job: Job,
    state: &AppState,
    req: &HttpRequest,
) -> HttpResponse {
    respond_with(builder, document(state, req, job))
}

/// A job's status document with this process's estimates and overdue bound, its links under [`base_url`].
pub(crate) fn document(state: &AppState, req: &HttpRequest, job: Job) -> StatusDocument {
    StatusDocument::new(job, &state.estimates, state.config.overdue_after, &base_url(state, req))
}

/// The external base URL of links: `ACKBOX_PUBLIC_URL`, else the request's own scheme and host (which a proxy may
/// set with `Forwarded` or `X-Forwarded-Host`/`-Proto`; set `ACKBOX_PUBLIC_URL` rather than trust them).
pub(crate) fn base_url(state: &AppState, req: &HttpRequest) -> String {
    match &state.config.public_url {
        Some(url) => url.clone(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    }
}

/// A 200 for a polling view of `job`, with `Retry-After` (the document's hint) until it is done.
pub(crate) fn polling_view(state: &AppState, job: &Job) -> HttpResponseBuilder {
    let mut builder = HttpResponse::Ok();
    if let Some(secs) = crate::document::retry_after(job, &state.estimates) {
        builder.insert_header((header::RETRY_AFTER, secs.to_string()));
    }
    builder
}

/// [`document_response`] for a document already built.
pub(crate) fn respond_with(mut builder: HttpResponseBuilder, doc: StatusDocument) -> HttpResponse {
    builder.insert_header((header::ETAG, etag(&doc)));
    if let Some(secs) = doc.retry_after_seconds {
        builder.insert_header((header::RETRY_AFTER, secs.to_string()));
    }
    builder.json(doc)
}
