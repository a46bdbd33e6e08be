//! `GET /v1/jobs/{id}/operation`: the job as a `google.longrunning.Operation` (AIP-151), for clients that poll
//! `GET /v1/{name}` until `done`.

use actix_web::{web, HttpResponse};

use crate::auth::Tenant;
use crate::error::{ApiError, Problem};
use crate::operations::Operation;
use crate::routes::{load_job, parse_job_id, polling_view};
use crate::state::AppState;

/// Get a job as a long-running operation (AIP-151).
#[utoipa::path(
    get, path = "/v1/jobs/{id}/operation", tag = "standard pollers",
    params(("id" = uuid::Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "`google.longrunning.Operation` in proto3 JSON: `name` (jobs/{id}/operation), `metadata`, `done`, and once done `response` (a google.protobuf.Value holding the result) or `error` (google.rpc.Status)", body = Operation,
         headers(("Retry-After" = u64, description = "Seconds to wait before polling again; absent once done"))),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, unknown or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job for this tenant (type /problems/not-found: never issued, or another tenant's), or a job of this tenant that finished longer ago than the retention and was deleted (type /problems/expired)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Tenant over its rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded (more than ACKBOX_MAX_IN_FLIGHT requests in flight) or the database unreachable: nothing was done; retry after Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_job_operation(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = load_job(&state, tenant.0, parse_job_id(&id)?).await?;
    Ok(polling_view(&state, &job).json(Operation::new(&job)))
}
