//! The one error type every handler returns, mapped to a status code and an RFC 9457 `application/problem+json`
//! body. Bodies are generic: causes are logged once, here, and never sent to the client.

use ackbox_db::db::DbError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answered to the client.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ApiError {
    /// Syntactically bad request: malformed JSON, malformed id (400).
    #[error("{0}")]
    BadRequest(String),
    /// Missing, unknown or revoked API key (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated, but the key's tenant may not do this (403): a non-admin key on the dashboard's data.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The URL is longer than the limit (414).
    #[error("the URL is longer than {0} bytes")]
    UriTooLong(usize),
    /// The headers are larger than the limit (431).
    #[error("the request headers are larger than {0} bytes")]
    HeadersTooLarge(usize),
    /// The request (body included) took longer than the deadline (408).
    #[error("the request was not completed within {0} s")]
    RequestTimeout(u64),
    /// The path exists but not with this method (405); the allowed methods.
    #[error("method not allowed; use {0}")]
    MethodNotAllowed(&'static str),
    /// No such job, or not yours (404).
    #[error("not found")]
    NotFound,
    /// The tenant's job finished and was deleted by retention (404, `/problems/expired`).
    #[error("expired")]
    Expired,
    /// No such path at all (404), with a detail that does not talk about jobs.
    #[error("no such resource")]
    NoRoute,
    /// The job exists but is not in a state that allows this (409).
    #[error("{0}")]
    Conflict(String),
    /// Body larger than the limit (413).
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// Body is not JSON (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Well-formed JSON with wrong fields or values (422).
    #[error("{0}")]
    Unprocessable(String),
    /// The tenant is over its rate limit (429); retry after this many seconds.
    #[error("rate limit exceeded; retry in {0} s")]
    TooManyRequests(u64),
    /// Postgres unreachable or the pool exhausted (503).
    #[error("service temporarily unavailable")]
    Unavailable,
    /// A bound on work in flight was reached: refused at once, not queued (503 with `Retry-After`).
    #[error("overloaded")]
    Overloaded,
    /// Anything else (500). The cause is logged, not sent.
    #[error("internal error")]
    Internal(String),
}

/// RFC 9457 problem details: the body of every error.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem<'a> {
    /// Stable URI of the error kind, e.g. `/problems/not-found`.
    #[serde(rename = "type")]
    kind: &'a str,
    /// Short summary of the error kind.
    title: &'a str,
    /// The HTTP status code.
    status: u16,
    /// What went wrong with this request.
    detail: String,
}

impl ApiError {
    /// The stable `type` URI (relative, resolved against the API's base) and title of each error kind.
    fn type_and_title(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::BadRequest(_) => ("/problems/bad-request", "Bad request"),
            ApiError::Unauthorized(_) => ("/problems/unauthorized", "Unauthorized"),
            ApiError::Forbidden(_) => ("/problems/forbidden", "Forbidden"),
            ApiError::RequestTimeout(_) => ("/problems/request-timeout", "Request timeout"),
            ApiError::UriTooLong(_) => ("/problems/uri-too-long", "URI too long"),
            ApiError::HeadersTooLarge(_) => ("/problems/headers-too-large", "Request header fields too large"),
            ApiError::TooManyRequests(_) => ("/problems/rate-limited", "Too many requests"),
            ApiError::NotFound | ApiError::NoRoute => ("/problems/not-found", "Not found"),
            ApiError::Expired => ("/problems/expired", "Expired"),
            ApiError::MethodNotAllowed(_) => ("/problems/method-not-allowed", "Method not allowed"),
            ApiError::Conflict(_) => ("/problems/conflict", "Conflict"),
            ApiError::PayloadTooLarge(_) => ("/problems/payload-too-large", "Payload too large"),
            ApiError::UnsupportedMediaType(_) => ("/problems/unsupported-media-type", "Unsupported media type"),
            ApiError::Unprocessable(_) => ("/problems/validation", "Invalid request"),
            ApiError::Unavailable => ("/problems/unavailable", "Service unavailable"),
            ApiError::Overloaded => ("/problems/overloaded", "Overloaded"),
            ApiError::Internal(_) => ("/problems/internal", "Internal error"),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            log::warn!("database unavailable: {e}");
            ApiError::Unavailable
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        DbError::from(e).into()
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(format!("blocking task failed: {e}"))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound | ApiError::NoRoute | ApiError::Expired => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable | ApiError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (kind, title) = self.type_and_title();
        let detail = match self {
            // The only place a cause is logged; the client gets a generic sentence.
            ApiError::Internal(cause) => {
                log::error!("internal error: {cause}");
                "The server failed to handle the request.".to_string()
            }
            ApiError::NotFound => "No job with this id exists.".to_string(),
            ApiError::Expired => "This job finished longer ago than the server keeps finished jobs (the relay's \
                                  ACKBOX_JOB_RETENTION_SECS), and was deleted with its result."
                .to_string(),
            ApiError::NoRoute => "There is no such resource; the API's routes are listed at /openapi.json.".to_string(),
            ApiError::Unavailable => "The database is unreachable; try again shortly.".to_string(),
            ApiError::Overloaded => {
                "The server is at its limit of work in flight; nothing was done. Retry after the delay in Retry-After."
                    .to_string()
            }
            other => other.to_string(),
        };
        let mut resp = HttpResponse::build(status);
        resp.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        match self {
            ApiError::Unavailable | ApiError::Overloaded => {
                resp.insert_header((header::RETRY_AFTER, "1"));
            }
            ApiError::TooManyRequests(secs) => {
                resp.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            ApiError::Unauthorized(_) => {
                resp.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::MethodNotAllowed(allow) => {
                resp.insert_header((header::ALLOW, *allow));
            }
            _ => {}
        }
        resp.body(
            serde_json::to_string(&Problem { kind, title, status: status.as_u16(), detail })
                .unwrap_or_else(|_| "{}".to_string()),
        )
    }
}

/// Maps actix's JSON extractor errors to the right 4xx: 413 too large, 415 not JSON, 400 malformed, 422 wrong shape.
pub fn json_error(err: actix_web::error::JsonPayloadError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let api = match err {
        J::Overflow { limit } | J::OverflowKnownLength { limit, .. } => ApiError::PayloadTooLarge(limit),
        J::ContentType => ApiError::UnsupportedMediaType("Content-Type must be application/json.".into()),
        J::Deserialize(e) if e.is_data() => ApiError::Unprocessable(e.to_string()),
        J::Deserialize(e) => ApiError::BadRequest(format!("malformed JSON: {e}")),
        other => ApiError::BadRequest(other.to_string()),
    };
    api.into()
}
