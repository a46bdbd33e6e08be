//! `GET /v1/admin/jobs`: every tenant's jobs for an operator (admin key), filtered and paginated, newest first. The
//! dashboard's job list; never a payload.

use ackbox_db::models::job::{list_all, AdminFilter};
use ackbox_db::models::{Job, JobStatus, Priority};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Admin;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// Most jobs on one page.
pub const MAX_ADMIN_PAGE: i64 = 200;

/// A job as an operator sees it: who owns it and where it stands, without its payload or result.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminJob {
    /// Job id.
    pub id: Uuid,
    /// The owning tenant's name.
    pub tenant: Option<String>,
    /// Handler kind.
    pub kind: String,
    /// Queue.
    pub queue: String,
    /// `high`, `normal` or `low`.
    #[schema(value_type = String, example = "normal")]
    pub priority: Priority,
    /// Status.
    pub status: JobStatus,
    /// Attempts started.
    pub attempts: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Accepted at.
    pub created_at: DateTime<Utc>,
    /// Latest attempt's start.
    pub started_at: Option<DateTime<Utc>>,
    /// Ended at.
    pub finished_at: Option<DateTime<Utc>>,
    /// Last failure (`{"code", "message"}`).
    pub error: Option<serde_json::Value>,
    /// A cancel was requested while it ran.
    pub cancel_requested: bool,
}

impl AdminJob {
    /// The operator's view of `job`, owned by `tenant`.
    pub fn new(job: Job, tenant: Option<String>) -> Self {
        Self {
            priority: job.priority(),
            id: job.id,
            tenant,
            kind: job.kind,
            queue: job.queue,
            status: job.status,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            error: job.error,
            cancel_requested: job.cancel_requested_at.is_some(),
        }
    }
}

/// Filters and paging of the operator's list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdminListParams {
    /// Only this status.
    pub status: Option<JobStatus>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this tenant (by name).
    pub tenant: Option<String>,
    /// Only jobs accepted at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only jobs accepted before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// A page of the operator's list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminJobPage {
    /// Newest first.
    pub items: Vec<AdminJob>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<Uuid>,
}

/// List every tenant's jobs (admin).
#[utoipa::path(
    get, path = "/v1/admin/jobs", tag = "admin",
    params(AdminListParams),
    responses(
        (status = 200, description = "A page of jobs, newest first", body = AdminJobPage),
        (status = 400, description = "A malformed filter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, unknown or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's tenant is not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded or the database unreachable; retry after Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn admin_list_jobs(
    state: web::Data<AppState>,
    _admin: Admin,
    params: web::Query<AdminListParams>,
) -> Result<HttpResponse, ApiError> {
    let p = params.into_inner();
    let limit = p.limit.unwrap_or(50);
    if !(1..=MAX_ADMIN_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit: must be between 1 and {MAX_ADMIN_PAGE}")));
    }
    let filter = AdminFilter {
        status: p.status,
        kind: p.kind,
        tenant: p.tenant,
        queue: p.queue,
        created_after: p.since,
        created_before: p.until,
        before_id: p.cursor,
        // One more than the page: whether there is a next page, without a count.
        limit: limit + 1,
    };
    let mut rows = state.with_conn(move |c| Ok(list_all(c, &filter)?)).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|(j, _)| j.id) } else { None };
    let items = rows.into_iter().map(|(job, tenant)| AdminJob::new(job, tenant)).collect();
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(AdminJobPage { items, next_cursor }))
}
