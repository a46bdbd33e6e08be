//! Limits on every request: the size of its URL and headers, and a deadline, body included.
//!
//! The deadline: a client that trickles its body (slow-loris on the body, which
//! `client_request_timeout` does not cover: that one bounds only the headers) gets 408 and its connection back,
//! instead of holding a connection and a task forever. Long-polls end before it (it is longer than
//! `ACKBOX_MAX_WAIT_SECS` by construction).

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use crate::error::ApiError;

/// Longest request target (path and query) accepted; longer is 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest total of header names and values accepted; larger is 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Refuses oversized URLs and headers before anything else runs (actix's own parser accepts far larger ones).
pub async fn limit_size(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let uri = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri > MAX_URI_BYTES {
        return Err(ApiError::UriTooLong(MAX_URI_BYTES).into());
    }
    let headers: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if headers > MAX_HEADER_BYTES {
        return Err(ApiError::HeadersTooLarge(MAX_HEADER_BYTES).into());
    }
    next.call(req).await
}

/// Runs the rest of the chain under the configured deadline. On expiry the handler's future is dropped (which stops
/// reading the body) and the error renders as a 408 problem+json. No clone of the request is kept: actix needs
/// the request's only reference to reuse it.
pub async fn enforce(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let limit = req
        .app_data::<web::Data<crate::state::AppState>>()
        .map_or(Duration::from_secs(75), |s| s.config.request_timeout);
    match tokio::time::timeout(limit, next.call(req)).await {
        Ok(res) => res,
        Err(_) => Err(ApiError::RequestTimeout(limit.as_secs()).into()),
    }
}
