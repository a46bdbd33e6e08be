//! `GET /v1/operations/{id}`: the Azure-style status monitor the 202's `Operation-Location` points to, so the Azure
//! SDKs' `LROBasePolling` (and any poller of the Azure REST API guidelines) drives a job unchanged.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::Tenant;
use crate::error::{ApiError, Problem};
use crate::operations::StatusMonitor;
use crate::routes::{base_url, load_job, parse_job_id, polling_view};
use crate::state::AppState;

/// Get a job's status monitor.
#[utoipa::path(
    get, path = "/v1/operations/{id}", tag = "standard pollers",
    params(("id" = uuid::Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "The status monitor: `status` is NotStarted, Running, Succeeded, Failed or Canceled; `resourceLocation` (once Succeeded) is the result's absolute URL", body = StatusMonitor,
         headers(("Retry-After" = u64, description = "Seconds to wait before polling again; absent once done"))),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, unknown or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job for this tenant (type /problems/not-found: never issued, or another tenant's), or a job of this tenant that finished longer ago than the retention and was deleted (type /problems/expired)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Tenant over its rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded (more than ACKBOX_MAX_IN_FLIGHT requests in flight) or the database unreachable: nothing was done; retry after Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_status_monitor(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let job = load_job(&state, tenant.0, parse_job_id(&id)?).await?;
    Ok(polling_view(&state, &job).json(StatusMonitor::new(&job, &base_url(&state, &req))))
}
