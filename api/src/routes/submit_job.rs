//! `POST /v1/jobs`: accept a job. The job row and its outbox row (and the Idempotency-Key, if any) commit in ONE
//! transaction before the 202 is sent, so every id we hand out can be read back at once.

use ackbox_db::models::job::Schedule;
use ackbox_db::models::{NewJob, Priority};
use ackbox_db::state::Submitted;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
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
/// Longest handler timeout a job may ask for (`timeout_ms`): 24 h.
pub const MAX_TIMEOUT_MS: i64 = 86_400_000;
/// Furthest a job may be scheduled ahead (`run_at`, `delay_ms`): 365 days.
pub const MAX_SCHEDULE_AHEAD_DAYS: i64 = 365;

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
    /// Run at this time (RFC 3339), not before: the job is accepted and readable at once, `queued` until then. A
    /// time in the past runs now; more than 365 days ahead is refused. At most one of `run_at` and `delay_ms`.
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-12-01T09:00:00Z")]
    #[serde(default, deserialize_with = "rfc3339")]
    pub run_at: Option<DateTime<Utc>>,
    /// Run this many milliseconds after acceptance (0 to 365 days). At most one of `run_at` and `delay_ms`.
    #[schema(minimum = 0, maximum = 31_536_000_000_i64, value_type = Option<i64>)]
    #[serde(default, deserialize_with = "integral64")]
    pub delay_ms: Option<i64>,
    /// This job's handler timeout in milliseconds (1 to 86400000, 24 h); absent: the worker's default
    /// (`ACKBOX_JOB_TIMEOUT_MS`). A handler running longer fails the attempt with `timeout`.
    #[schema(minimum = 1, maximum = 86_400_000, value_type = Option<i64>)]
    #[serde(default, deserialize_with = "integral64")]
    pub timeout_ms: Option<i64>,
    /// `high`, `normal` (the default) or `low`. Whenever work waits, a higher priority is dispatched and claimed
    /// first: high jobs overtake normal and low ones submitted earlier (each level travels on a Kafka topic of its
    /// own, and workers read the highest first). Within a level, jobs keep their order.
    #[schema(value_type = Option<String>, pattern = "^(high|normal|low)$", example = "high")]
    #[serde(default, deserialize_with = "priority")]
    pub priority: Option<Priority>,
    /// The queue (1–128 of `[A-Za-z0-9_.:-]`) the job belongs to; it must exist (a worker serves it, or an operator
    /// created it), else 422. Absent: its kind's queue (`ACKBOX_KIND_QUEUES` of the workers that run it), else
    /// `default`. A paused queue's jobs wait in `queued`; a worker caps how many of a queue's jobs it runs at once.
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:-]+$", example = "emails")]
    #[serde(default)]
    pub queue: Option<String>,
    /// When the job ends (succeeded, failed or cancelled), its status document is POSTed here, signed in the
    /// Standard Webhooks style (`webhook-id`, `webhook-timestamp`, `webhook-signature` with the tenant's secret from
    /// `GET /v1/callbacks/secret`), and retried with backoff until the receiver answers 2xx. An absolute http(s) URL of
    /// at most 2048 characters; loopback, private and link-local addresses (169.254.169.254 among them) are refused
    /// with a 422, unless the server allows loopback or private ones. The document's `callback` shows the delivery.
    #[schema(max_length = 2048, pattern = "^https?://", example = "https://example.com/hooks/ackbox")]
    #[serde(default)]
    pub callback_url: Option<String>,
}

/// An optional priority by name; the error names the field and the levels.
fn priority<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Priority>, D::Error> {
    use serde::de::Error;
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(raw)) => {
            raw.parse().map(Some).map_err(|e| D::Error::custom(format!("priority: {e}")))
        }
        Some(other) => {
            Err(D::Error::custom(format!("priority: expected \"high\", \"normal\" or \"low\", not {other}")))
        }
    }
}

/// An optional RFC 3339 time; the error names the field (chrono's own message does not).
fn rfc3339<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    use serde::de::Error;
    let Some(raw) = Option::<String>::deserialize(d)? else { return Ok(None) };
    DateTime::parse_from_rfc3339(&raw)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| D::Error::custom(format!("run_at: must be an RFC 3339 time such as 2026-12-01T09:00:00Z ({e})")))
}

/// [`integral`] for 64-bit values.
fn integral64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else { return Ok(None) };
    match n.as_i64() {
        Some(i) => Ok(Some(i)),
        None => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9e15 => Ok(Some(f as i64)),
            _ => Err(D::Error::custom(format!("invalid type: {n}, expected an integer"))),
        },
    }
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
    // Absent options are left out, so a request without them fingerprints as it did before they existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<&'a ackbox_db::models::job::Schedule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<i32>,
    // Normal is left out, so a request that does not ask for a priority fingerprints as it did before priorities.
    #[serde(skip_serializing_if = "is_normal")]
    priority: Priority,
    // Only a queue the request named: its kind's queue may change between a request and its retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    callback_url: Option<&'a str>,
}

fn is_normal(p: &Priority) -> bool {
    *p == Priority::Normal
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
        let now = Utc::now();
        let ahead = chrono::Duration::days(MAX_SCHEDULE_AHEAD_DAYS);
        let schedule = match (self.run_at, self.delay_ms) {
            (Some(_), Some(_)) => {
                return Err(ApiError::Unprocessable("run_at, delay_ms: give at most one of them".into()));
            }
            (Some(at), None) => Some(Schedule::RunAt(at)),
            (None, Some(ms)) if !(0..=ahead.num_milliseconds()).contains(&ms) => {
                return Err(ApiError::Unprocessable(format!(
                    "delay_ms: must be between 0 and {} ({MAX_SCHEDULE_AHEAD_DAYS} days)",
                    ahead.num_milliseconds()
                )));
            }
            (None, Some(ms)) => Some(Schedule::DelayMs(ms)),
            (None, None) => None,
        };
        let due = match schedule {
            Some(Schedule::RunAt(at)) => Some(at),
            Some(Schedule::DelayMs(ms)) => Some(now + chrono::Duration::milliseconds(ms)),
            None => None,
        };
        if due.is_some_and(|due| due > now + ahead) {
            return Err(ApiError::Unprocessable(format!("run_at: at most {MAX_SCHEDULE_AHEAD_DAYS} days ahead")));
        }
        let timeout_ms = match self.timeout_ms {
            Some(ms) if !(1..=MAX_TIMEOUT_MS).contains(&ms) => {
                return Err(ApiError::Unprocessable(format!(
                    "timeout_ms: must be between 1 and {MAX_TIMEOUT_MS} (24 h)"
                )));
            }
            Some(ms) => i32::try_from(ms).ok(),
            None => None,
        };
        let mut job = NewJob::new(self.kind, self.payload, max_attempts);
        // A time already past runs now, like an unscheduled job.
        job.not_before = due.filter(|due| *due > now);
        job.schedule = schedule;
        job.timeout_ms = timeout_ms;
        if let Some(queue) = self.queue {
            if !ackbox_db::models::queue::valid_name(&queue) {
                return Err(ApiError::Unprocessable(format!(
                    "queue: must be 1 to {MAX_KIND_LEN} characters of letters, digits, '_', '-', '.' or ':'"
                )));
            }
            job.queue = queue;
            job.queue_requested = true;
        }
        // Where it may point depends on the server's policy: `AppState::check_callback` decides.
        job.callback_url = self.callback_url;
        Ok(job.with_priority(self.priority.unwrap_or_default()))
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
    let canonical = Canonical {
        kind: &job.kind,
        payload: &job.payload,
        max_attempts: job.max_attempts,
        schedule: job.schedule.as_ref(),
        timeout_ms: job.timeout_ms,
        priority: Priority::from_i16(job.priority_level),
        queue: job.queue_requested.then_some(job.queue.as_str()),
        callback_url: job.callback_url.as_deref(),
    };
    Sha256::digest(serde_json::to_vec(&canonical).unwrap_or_default()).to_vec()
}

/// The 422 for a kind no worker has registered; `field` is where the request named it (`kind`, `jobs[3].kind`).
pub(crate) fn unknown_kind(field: &str, kind: &str) -> ApiError {
    ApiError::Unprocessable(format!("{field}: no worker has registered kind {kind:?}, so the job could never run"))
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
        (status = 422, description = "Invalid fields, unknown kind, unknown queue, a callback_url that may not be reached, or Idempotency-Key reused with another body", body = Problem, content_type = "application/problem+json"),
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
    let mut new = SubmitJob::from_json(body.into_inner())?.validate()?.for_tenant(tenant.0).with_trace(trace);
    if !state.kind_known(&new.kind).await? {
        return Err(unknown_kind("kind", &new.kind));
    }
    state.resolve_queue("queue", &mut new).await?;
    state.check_callback("callback_url", &new)?;
    let key = key.map(|key| OwnedKey::received(key, fingerprint(&new), state.config.idempotency_ttl));
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
