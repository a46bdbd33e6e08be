//! `GET /v1/jobs/{id}`: the status document, with conditional GET (`If-None-Match` → 304) and long-poll
//! (`Prefer: wait=N`, RFC 7240).

use std::time::Duration;

use ackbox_db::models::Job;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::Tenant;
use crate::document::{etag, StatusDocument};
use crate::error::{ApiError, Problem};
use crate::routes::{document, load_job, parse_job_id, respond_with};
use crate::state::AppState;

/// `wait=N` from a `Prefer` header, if any (other preferences are ignored).
pub fn prefer_wait(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .filter_map(|p| p.trim().strip_prefix("wait="))
        .find_map(|n| n.trim().trim_matches('"').parse().ok())
}

/// Get a job's status.
#[utoipa::path(
    get, path = "/v1/jobs/{id}", tag = "jobs",
    params(
        ("id" = uuid::Uuid, Path, description = "Job id"),
        ("Prefer" = Option<String>, Header, description = "wait=N: hold up to N s (max 60) until the job changes; answered at once, without Preference-Applied, while ACKBOX_MAX_WAITERS requests are already waiting"),
        ("If-None-Match" = Option<String>, Header, description = "ETag of the copy you have: 304 if unchanged"),
    ),
    responses(
        (status = 200, description = "The status document", body = StatusDocument,
         headers(("ETag" = String), ("Retry-After" = u64), ("Preference-Applied" = String))),
        (status = 304, description = "Unchanged since the ETag in If-None-Match"),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, unknown or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job for this tenant (type /problems/not-found: never issued, or another tenant's), or a job of this tenant that finished longer ago than the retention and was deleted (type /problems/expired)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Tenant over its rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded (more than ACKBOX_MAX_IN_FLIGHT requests in flight) or the database unreachable: nothing was done; retry after Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_job(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = parse_job_id(&id)?;
    let if_none_match = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(str::to_string);
    let wait = prefer_wait(&req).map(|n| Duration::from_secs(n).min(state.config.max_wait)).filter(|w| !w.is_zero());

    // Subscribe before the first read, so a change between the read and the wait still wakes us. Past
    // `ACKBOX_MAX_WAITERS` waiting requests, a long-poll is answered at once, as a plain GET (no Preference-Applied).
    let waiter = wait.and_then(|w| Some((w, state.waiters.try_register(id, state.config.max_waiters)?)));
    let Some((wait, mut waiter)) = waiter else {
        if wait.is_some() {
            state.metrics.overload_refused.with_label_values(&["waiters"]).inc();
        }
        let job = load_job(&state, tenant.0, id).await?;
        return Ok(respond(&state, &req, job, if_none_match.as_deref(), None));
    };
    let first = load_job(&state, tenant.0, id).await?;
    // Wait for the status to change (a new attempt counts as a change); progress alone does not end the wait. With
    // If-None-Match, a client whose copy is already stale is answered at once.
    let baseline = (first.status, first.attempts);
    let stale_copy = if_none_match.as_deref().is_some_and(|v| v != etag(&document(&state, &req, first.clone())));
    let mut job = first;
    let deadline = tokio::time::Instant::now() + wait;
    while !stale_copy && !job.status.is_terminal() && (job.status, job.attempts) == baseline {
        tokio::select! {
            changed = waiter.changed.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = tokio::time::sleep_until(deadline) => break,
        }
        job = load_job(&state, tenant.0, id).await?;
    }
    drop(waiter);
    Ok(respond(&state, &req, job, if_none_match.as_deref(), Some(wait)))
}

fn respond(
    state: &AppState,
    req: &HttpRequest,
    job: Job,
    if_none_match: Option<&str>,
    waited: Option<Duration>,
) -> HttpResponse {
    let doc = document(state, req, job);
    let tag = etag(&doc);
    let matches = if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut builder = if matches { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    if let Some(w) = waited {
        builder.insert_header(("Preference-Applied", format!("wait={}", w.as_secs())));
    }
    if matches {
        builder.insert_header((header::ETAG, tag));
        if let Some(secs) = doc.retry_after_seconds {
            builder.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        return builder.finish();
    }
    respond_with(builder, doc)
}
