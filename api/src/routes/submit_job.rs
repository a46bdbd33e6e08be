//! `POST /v1/jobs`: accept a job. The job row and its outbox row (and the Idempotency-Key, if any) commit in ONE
//! transaction before the 202 is sent, so every id we hand out can be read back at once.

use ackbox_db::models::NewJob;
use ackbox_db::state::Submitted;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::auth::Tenant;
use crate::committer::OwnedKey;
use crate::document::{job_path, monitor_path, StatusDocument};
use crate::error::{ApiError, Problem};
use crate::observe::RequestContext;
use crate::routes::{base_url, document_response, respond_with};
use crate::state::AppState;

pub use ackbox_db::models::job_kind::{valid_kind, MAX_KIND_LEN};
/// Attempts a client may ask for at most.
pub const MAX_ATTEMPTS_LIMIT: i32 = 100;
/// Attempts when the client does not say.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;
/// Longest accepted Idempotency-Key.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The request body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// Handler kind: 1–128 of `[A-Za-z0-9_.:-]`, registered by some worker.
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:-]+$", example = "echo")]
    pub kind: String,
    /// Handler input; `{}` when absent.
    #[serde(default = "empty_object")]
    pub payload: serde_json::Value,
    /// Attempts allowed, 1..=100 (default 3).
    #[schema(minimum = 1, maximum = 100, value_type = Option<i32>)]
    #[serde(default, deserialize_with = "integral")]
    pub max_attempts: Option<i32>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// An optional integer that also accepts an integral float (`3.0`): JSON, and JSON Schema's `integer`, do not tell
/// them apart, so neither do we.
fn integral<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else { return Ok(None) };
    let v = match n.as_i64() {
        Some(i) => i,
        None => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => f as i64,
            _ => return Err(D::Error::custom(format!("invalid type: {n}, expected an integer"))),
        },
    };
    i32::try_from(v).map(Some).map_err(|_| D::Error::custom(format!("max_attempts: {v} is out of range")))
}

/// The canonical form of a request, fingerprinted for Idempotency-Key: defaults applied, object keys sorted
/// (serde_json's map is ordered), so equivalent bodies match.
#[derive(Serialize)]
struct Canonical<'a> {
    kind: &'a str,
    payload: &'a serde_json::Value,
    max_attempts: i32,
}

impl SubmitJob {
    /// Reads the body. Only a JSON object is a request (serde would also take an array as a struct's fields in
    /// order); wrong fields and types are 422 naming them.
    pub fn from_json(body: serde_json::Value) -> Result<Self, ApiError> {
        if !body.is_object() {
            return Err(ApiError::Unprocessable("the body must be a JSON object: expected {\"kind\": ...}".into()));
        }
        serde_json::from_value(body).map_err(|e| ApiError::Unprocessable(e.to_string()))
    }

    /// Checks the values serde cannot; the message names the field.
    pub fn validate(self) -> Result<NewJob, ApiError> {
        if !valid_kind(&self.kind) {
            return Err(ApiError::Unprocessable(format!(
                "kind: must be 1 to {MAX_KIND_LEN} characters of letters, digits, '_', '-', '.' or ':'"
            )));
        }
        if !storable(&self.payload) {
            return Err(ApiError::Unprocessable(format!(
                "payload: Postgres cannot store it: numbers must lie within ±{MAX_NUMBER_MAGNITUDE:e} and strings \
                 (and keys) may not contain \\u0000"
            )));
        }
        let max_attempts = self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&max_attempts) {
            return Err(ApiError::Unprocessable(format!("max_attempts: must be between 1 and {MAX_ATTEMPTS_LIMIT}")));
        }
        Ok(NewJob::new(self.kind, self.payload, max_attempts))
    }
}

/// Largest number magnitude accepted in a payload. Postgres keeps jsonb numbers as exact decimals; one near the
/// f64 limit comes back as a decimal just beyond it and could no longer be read, so the job could never run.
pub const MAX_NUMBER_MAGNITUDE: f64 = 1e300;

/// Whether Postgres's jsonb can store `v` and give it back: it refuses `\u0000` in strings, and numbers near the f64
/// limit come back out of range.
fn storable(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(n) => n.as_f64().is_some_and(|f| f.is_finite() && f.abs() <= MAX_NUMBER_MAGNITUDE),
        serde_json::Value::String(s) => !s.contains('\0'),
        serde_json::Value::Array(a) => a.iter().all(storable),
        serde_json::Value::Object(o) => o.iter().all(|(k, v)| !k.contains('\0') && storable(v)),
        _ => true,
    }
}

/// SHA-256 of the canonical request.
pub fn fingerprint(job: &NewJob) -> Vec<u8> {
    let canonical = Canonical { kind: &job.kind, payload: &job.payload, max_attempts: job.max_attempts };
    Sha256::digest(serde_json::to_vec(&canonical).unwrap_or_default()).to_vec()
}

pub(crate) fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else { return Ok(None) };
    let key = value.to_str().map_err(|_| ApiError::BadRequest("Idempotency-Key must be visible ASCII".into()))?;
    let ok = !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY_LEN && key.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if !ok {
        return Err(ApiError::BadRequest(format!(
            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
        )));
    }
    Ok(Some(key.to_string()))
}

/// Submit a job.
#[utoipa::path(
    post, path = "/v1/jobs", tag = "jobs",
    request_body = SubmitJob,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries of this POST safe (24 h)",
            min_length = 1, max_length = 255, pattern = "^[!-~]+$")),
    responses(
        (status = 202, description = "Accepted: committed, readable at Location at once", body = StatusDocument,
         headers(("Location" = String, description = "Absolute URL of the status document"),
                 ("Operation-Location" = String, description = "Absolute URL of the Azure-style status monitor (GET /v1/operations/{id})"),
                 ("Retry-After" = u64), ("ETag" = String))),
        (status = 400, description = "Malformed JSON or header", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, unknown or revoked key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, unknown kind, or Idempotency-Key reused with another body", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Tenant over its rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded (the submit queue, ACKBOX_SUBMIT_QUEUE, or ACKBOX_MAX_IN_FLIGHT requests in flight are full: nothing was written, retry after Retry-After), or the database unreachable. If the database went away during the COMMIT itself, the job may exist: retry with the same Idempotency-Key, which returns it or creates it once", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn submit_job(
    state: web::Data<AppState>,
    tenant: Tenant,
    req: HttpRequest,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    // The job carries this request's span context: every dispatch of it continues the client's trace.
    let trace = RequestContext::of(&req).map(|c| c.trace);
    let new = SubmitJob::from_json(body.into_inner())?.validate()?.for_tenant(tenant.0).with_trace(trace);
    if !state.kind_known(&new.kind).await? {
        return Err(ApiError::Unprocessable(format!(
            "kind: no worker has registered kind {:?}, so the job could never run",
            new.kind
        )));
    }
    let key = key.map(|key| OwnedKey {
        key,
        fingerprint: fingerprint(&new),
        expires_at: chrono::Utc::now()
            + chrono::Duration::from_std(state.config.idempotency_ttl).unwrap_or(chrono::Duration::days(1)),
    });
    let kind = new.kind.clone();
    // Group commit: this request shares the next transaction with whatever else is submitted meanwhile, and is
    // answered only once that transaction committed.
    let submitted = state.committer.submit(new, key).await.inspect_err(|e| {
        if matches!(e, ApiError::Overloaded) {
            state.metrics.overload_refused.with_label_values(&["submit_queue"]).inc();
        }
    })?;
    // Committed: from here on the id is durable and a GET finds it.
    let (job, replayed) = match submitted {
        Submitted::Created(job) => {
            state.metrics.submitted.with_label_values(&[&kind]).inc();
            (job, false)
        }
        Submitted::Replayed(job) => (job, true),
        Submitted::KeyMismatch => {
            return Err(ApiError::Unprocessable(
                "Idempotency-Key was already used with a different request body".into(),
            ))
        }
    };
    let mut resp = HttpResponse::Accepted();
    let base = base_url(&state, &req);
    resp.insert_header((header::LOCATION, format!("{base}{}", job_path(job.id))));
    // The Azure LRO pattern: a status monitor whose `status` standard pollers understand.
    resp.insert_header(("Operation-Location", format!("{base}{}", monitor_path(job.id))));
    if replayed {
        resp.insert_header(("Idempotent-Replayed", "true"));
        // The first request's answer again: the job as accepted (see `as_accepted`).
        return Ok(respond_with(resp, StatusDocument::replay(job, &state.estimates, &base)));
    }
    Ok(document_response(resp, job, &state, &req))
}
