//! `POST /v1/jobs/batch`: accept up to [`MAX_BATCH_JOBS`] jobs at once, all or nothing. Every job row and its outbox
//! row (and the Idempotency-Key, standing for the whole batch) commit in ONE transaction before the 202, which lists
//! every job in request order; an invalid item is a 422 naming its index, and nothing is written.

use ackbox_db::models::NewJob;
use ackbox_db::state::SubmittedBatch;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::auth::Tenant;
use crate::committer::OwnedKey;
use crate::document::StatusDocument;
use crate::error::{ApiError, Problem};
use crate::observe::RequestContext;
use crate::routes::submit_job::{fingerprint, idempotency_key, unknown_kind, SubmitJob};
use crate::routes::{base_url, document};
use crate::state::AppState;

/// Most jobs in one batch.
pub const MAX_BATCH_JOBS: usize = 1000;

/// The request body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBatch {
    /// 1 to 1000 jobs, each a `POST /v1/jobs` body.
    #[schema(min_items = 1, max_items = 1000)]
    pub jobs: Vec<SubmitJob>,
}

/// The 202's body: every job, in request order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAccepted {
    /// The status document of each job, in the order of the request's `jobs`.
    pub jobs: Vec<StatusDocument>,
}

/// Reads and checks the body: the item's index leads every message about it.
fn parse(body: serde_json::Value) -> Result<Vec<NewJob>, ApiError> {
    let serde_json::Value::Object(mut map) = body else {
        return Err(ApiError::Unprocessable("the body must be a JSON object: expected {\"jobs\": [...]}".into()));
    };
    if let Some(other) = map.keys().find(|k| k.as_str() != "jobs") {
        return Err(ApiError::Unprocessable(format!("unknown field `{other}`, expected `jobs`")));
    }
    let Some(serde_json::Value::Array(items)) = map.remove("jobs") else {
        return Err(ApiError::Unprocessable("jobs: required, an array of 1 to 1000 job bodies".into()));
    };
    if items.is_empty() || items.len() > MAX_BATCH_JOBS {
        return Err(ApiError::Unprocessable(format!(
            "jobs: must hold 1 to {MAX_BATCH_JOBS} items, not {}",
            items.len()
        )));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            SubmitJob::from_json(item).and_then(SubmitJob::validate).map_err(|e| match e {
                ApiError::Unprocessable(msg) => ApiError::Unprocessable(format!("jobs[{i}]: {msg}")),
                other => other,
            })
        })
        .collect()
}

/// SHA-256 over the canonical form of every item, marked as a batch: a key used for a single submit never matches.
fn batch_fingerprint(news: &[NewJob]) -> Vec<u8> {
    let mut hash = Sha256::new();
    hash.update(b"batch");
    for new in news {
        hash.update(fingerprint(new));
    }
    hash.finalize().to_vec()
}

/// Submit up to 1000 jobs at once, all or nothing.
#[utoipa::path(
    post, path = "/v1/jobs/batch", tag = "jobs",
    request_body = SubmitBatch,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries of this POST safe (24 h): the key stands for the whole batch",
            min_length = 1, max_length = 255, pattern = "^[!-~]+$")),
    responses(
        (status = 202, description = "Accepted: every job committed in one transaction, each readable at its links.self at once; in request order", body = BatchAccepted),
        (status = 400, description = "Malformed JSON or header", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, unknown or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (ACKBOX_MAX_BATCH_BODY_BYTES)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not 1 to 1000 jobs, an invalid item (the detail names its index: jobs[3].kind ...), an unknown kind or queue, a callback_url that may not be reached, or the Idempotency-Key reused with another body; nothing was written", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Tenant over its rate limit (a batch counts as one request)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded (among them: more than ACKBOX_BATCH_QUEUE batches already waiting for one of the ACKBOX_MAX_BATCHES slots) or the database unreachable: nothing was written, unless the database went away during the COMMIT itself; retry with the same Idempotency-Key, which returns the batch or creates it once", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn submit_batch(
    state: web::Data<AppState>,
    tenant: Tenant,
    req: HttpRequest,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let trace = RequestContext::of(&req).map(|c| c.trace);
    let mut news: Vec<NewJob> =
        parse(body.into_inner())?.into_iter().map(|n| n.for_tenant(tenant.0).with_trace(trace.clone())).collect();
    for (i, new) in news.iter().enumerate() {
        state.check_callback(&format!("jobs[{i}].callback_url"), new)?;
    }
    let mut kinds: Vec<&str> = news.iter().map(|n| n.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    for kind in kinds {
        if !state.kind_known(kind).await? {
            let first = news.iter().position(|n| n.kind == kind).unwrap_or(0);
            return Err(unknown_kind(&format!("jobs[{first}].kind"), kind));
        }
    }
    for (i, new) in news.iter_mut().enumerate() {
        state.resolve_queue(&format!("jobs[{i}].queue"), new).await?;
    }
    let key = key.map(|key| OwnedKey::received(key, batch_fingerprint(&news), state.config.idempotency_ttl));
    let topic = state.config.topic.clone();
    let submitted = state
        .with_conn(move |c| Ok(ackbox_db::state::submit_all(c, &news, &topic, key.as_ref().map(OwnedKey::as_key))?))
        .await?;
    // Committed: from here on every id is durable and a GET finds it.
    let (jobs, replayed) = match submitted {
        SubmittedBatch::Created(jobs) => {
            for job in &jobs {
                state.metrics.submitted.with_label_values(&[&job.kind]).inc();
            }
            (jobs, false)
        }
        SubmittedBatch::Replayed(jobs) => (jobs, true),
        SubmittedBatch::KeyMismatch => {
            return Err(ApiError::Unprocessable(
                "Idempotency-Key was already used with a different request body".into(),
            ))
        }
    };
    let base = base_url(&state, &req);
    let mut resp = HttpResponse::Accepted();
    if replayed {
        resp.insert_header(("Idempotent-Replayed", "true"));
    }
    let body = answer(
        jobs.len(),
        jobs.into_iter().map(|job| {
            if replayed {
                StatusDocument::replay(job, &state.estimates, &base)
            } else {
                document(&state, &req, job)
            }
        }),
    )?;
    Ok(resp.insert_header(actix_web::http::header::ContentType::json()).body(body))
}

/// The 202's body, [`BatchAccepted`], written one status document at a time into one buffer sized from the first:
/// a thousand documents are about 1 MB of JSON, and building them all first, then a buffer that doubles as it
/// grows, held about three times that per batch (what [`crate::shed::limit_batches`] multiplies by its slots).
fn answer(n: usize, docs: impl Iterator<Item = StatusDocument>) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    body.extend_from_slice(b"{\"jobs\":[");
    for (i, doc) in docs.enumerate() {
        let start = body.len();
        if i > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, &doc).map_err(|e| ApiError::Internal(format!("status document: {e}")))?;
        if i == 0 {
            // An estimate: ids and times are fixed-width, kinds and reasons are not, so 1/8 spare, and the buffer
            // still grows if a later document is longer.
            let per = body.len() - start + 1;
            body.reserve((per + per / 8) * (n - 1) + 2);
        }
    }
    body.extend_from_slice(b"]}");
    Ok(body)
}
