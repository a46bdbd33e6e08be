//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the handlers' annotations and the types they use,
//! so it cannot drift from what they do.

use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ApiError;
use crate::state::AppState;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("ackbox key").build()),
        );
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Ackbox", description = "Long-running jobs over HTTP: an id we hand out is always found."),
    paths(
        super::submit_job::submit_job,
        super::submit_batch::submit_batch,
        super::list_jobs::list_jobs,
        super::get_job::get_job,
        super::get_job_result::get_job_result,
        super::cancel_job::cancel_job,
        super::get_status_monitor::get_status_monitor,
        super::get_job_operation::get_job_operation,
        super::get_callback_secret::get_callback_secret,
        super::admin_list_jobs::admin_list_jobs,
        super::admin_retry_job::admin_retry_job,
        super::admin_cancel_job::admin_cancel_job,
        super::admin_retry_failed::admin_retry_failed,
    ),
    components(schemas(
        crate::error::Problem,
        crate::document::StatusDocument,
        super::SubmitJob,
        super::SubmitBatch,
        super::BatchAccepted,
        super::JobList,
        crate::operations::StatusMonitor,
        crate::operations::Operation,
        crate::document::CallbackStatus,
        super::get_callback_secret::CallbackSecret,
        super::admin_list_jobs::AdminJob,
        super::admin_list_jobs::AdminJobPage,
        super::admin_retry_failed::RetryFailed,
        super::admin_retry_failed::RetriedFailed,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "jobs", description = "Submit, poll, list and cancel jobs"),
        (name = "admin", description = "Operator actions across tenants (an admin key: ackbox keys create --tenant NAME --admin): the dashboard's job list, retry and cancel"),
        (name = "callbacks", description = "Completion callbacks: the secret their signatures are made with"),
        (name = "standard pollers", description = "The same jobs in the shapes standard long-running-operation clients poll: the Azure status monitor (the 202's Operation-Location) and google.longrunning.Operation (AIP-151)")
    )
)]
pub struct ApiDoc;

/// Handler for `GET /openapi.json`. The accepted kinds depend on which workers have registered, so `kind` is
/// served as an enum of the kinds registered right now: the document says exactly what a POST will accept.
pub async fn openapi_json(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let kinds = state.refresh_kinds().await?;
    let mut doc = serde_json::to_value(ApiDoc::openapi()).map_err(|e| ApiError::Internal(e.to_string()))?;
    if !kinds.is_empty() {
        doc["components"]["schemas"]["SubmitJob"]["properties"]["kind"]["enum"] = serde_json::json!(kinds);
    }
    Ok(HttpResponse::Ok().json(doc))
}
