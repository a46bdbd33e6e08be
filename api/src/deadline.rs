//! A deadline on every request, body included: a client that trickles its body (slow-loris on the body, which
//! `client_request_timeout` does not cover: that one bounds only the headers) gets 408 and its connection back,
//! instead of holding a connection and a task forever. Long-polls end before it (it is longer than
//! `ACKBOX_MAX_WAIT_SECS` by construction).

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use crate::error::ApiError;

/// Runs the rest of the chain under the configured deadline. On expiry the handler's future is dropped (which stops
/// reading the body) and the error renders as a 408 problem+json. No clone of the request is kept: actix needs
/// the request's only reference to reuse it.
pub async fn enforce(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let limit =
        req.app_data::<web::Data<crate::AppState>>().map_or(Duration::from_secs(75), |s| s.config.request_timeout);
    match tokio::time::timeout(limit, next.call(req)).await {
        Ok(res) => res,
        Err(_) => Err(ApiError::RequestTimeout(limit.as_secs()).into()),
    }
}
