//! `GET /v1/jobs?status=&kind=&limit=&cursor=`: the tenant's jobs, newest first, with keyset pagination.

use ackbox_db::models::{job, Job, JobStatus};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::document::StatusDocument;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// Page size when the client does not say.
pub const DEFAULT_LIMIT: i64 = 20;
/// Largest page.
pub const MAX_LIMIT: i64 = 100;

/// Query parameters. Anything malformed is a 400 naming the parameter.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only jobs in this status: queued, running, succeeded, failed or cancelled.
    #[param(value_type = Option<JobStatus>)]
    pub status: Option<String>,
    /// Only jobs of this kind.
    #[param(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:-]+$")]
    pub kind: Option<String>,
    /// Page size, 1..=100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<uuid::Uuid>)]
    pub cursor: Option<String>,
}

/// A page of jobs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    /// Status documents, newest first.
    pub items: Vec<StatusDocument>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

struct Filter {
    status: Option<JobStatus>,
    kind: Option<String>,
    limit: i64,
    cursor: Option<Uuid>,
}

fn parse(p: ListParams) -> Result<Filter, ApiError> {
    let status = p
        .status
        .map(|s| s.parse::<JobStatus>().map_err(|_| ApiError::BadRequest(format!("status: unknown status {s:?}"))))
        .transpose()?;
    let kind = p
        .kind
        .map(|k| {
            if crate::routes::submit_job::valid_kind(&k) {
                Ok(k)
            } else {
                Err(ApiError::BadRequest("kind: not a valid kind".into()))
            }
        })
        .transpose()?;
    let limit = match p.limit {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| ApiError::BadRequest(format!("limit: must be an integer from 1 to {MAX_LIMIT}")))?,
    };
    let cursor = p
        .cursor
        .map(|c| Uuid::try_parse(&c).map_err(|_| ApiError::BadRequest("cursor: not a cursor this API issued".into())))
        .transpose()?;
    Ok(Filter { status, kind, limit, cursor })
}

/// List jobs.
#[utoipa::path(
    get, path = "/v1/jobs", tag = "jobs",
    params(ListParams),
    responses(
        (status = 200, description = "A page of the tenant's jobs", body = JobList),
        (status = 400, description = "A malformed filter, limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, unknown or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Tenant over its rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded (more than ACKBOX_MAX_IN_FLIGHT requests in flight) or the database unreachable: nothing was done; retry after Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_jobs(
    state: web::Data<AppState>,
    tenant: Tenant,
    params: web::Query<ListParams>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let filter = parse(params.into_inner())?;
    let limit = filter.limit;
    let mut rows = state
        .with_conn(move |conn| -> Result<Vec<Job>, ApiError> {
            // One row more than the page tells whether there is a next one.
            let kind = filter.kind.as_deref();
            Ok(job::list_for_tenant(conn, tenant.0, filter.cursor, filter.status, kind, limit + 1)?)
        })
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|j| j.id.to_string()) } else { None };
    let items = rows.into_iter().map(|j| crate::routes::document(&state, &req, j)).collect();
    Ok(HttpResponse::Ok().json(JobList { items, next_cursor }))
}
