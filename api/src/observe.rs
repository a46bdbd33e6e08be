//! Every request, observed once: its count and latency in the metrics, its request id (`X-Request-Id`, the client's own if valid, else a new one, echoed on
//! every response), its server span (a child of the client's `traceparent`, or the root of a new trace), and one
//! access-log line (target `ackbox_api::access`: method, route template, status, duration, request id, trace id;
//! never the raw path, a query, a header, a key or a body).

use std::time::Instant;

use ackbox_runtime::telemetry::{self, SpanMethods as _};
use ackbox_types::trace::{TraceContext, TRACEPARENT, TRACESTATE};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, HttpRequest};

use crate::state::AppState;

/// The header that carries a request id.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Longest client request id kept; a longer or otherwise invalid one is replaced by a new id.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// What handlers may read of the request's observation (from its extensions).
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// The id echoed in `X-Request-Id`.
    pub request_id: String,
    /// The W3C context of this request's server span: a submit stores it with the job, so the job's dispatches
    /// continue this trace.
    pub trace: TraceContext,
}

impl RequestContext {
    /// The context of `req` (always present behind [`observe`]).
    pub fn of(req: &HttpRequest) -> Option<Self> {
        req.extensions().get::<Self>().cloned()
    }
}

/// A client's request id if it is 1 to [`MAX_REQUEST_ID_LEN`] characters of `[A-Za-z0-9._:/+=@-]` (so it is safe in
/// any log format), else `None`.
pub fn valid_request_id(raw: &str) -> Option<&str> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_REQUEST_ID_LEN
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:/+=@-".contains(&b));
    ok.then_some(raw)
}

fn header<'a>(req: &'a ServiceRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The middleware: outermost, so it sees every answer, including those of the other middleware (408, 413).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let start = Instant::now();
    let request_id = header(&req, REQUEST_ID.as_str())
        .and_then(valid_request_id)
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_string);
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    let parent = header(&req, TRACEPARENT).and_then(|tp| TraceContext::parse(tp, header(&req, TRACESTATE)));
    let attributes = vec![
        telemetry::KeyValue::new("http.request.method", method.clone()),
        telemetry::KeyValue::new("http.route", route.clone()),
        telemetry::KeyValue::new("ackbox.request_id", request_id.clone()),
    ];
    let (mut span, trace) =
        telemetry::start_span(format!("{method} {route}"), telemetry::SpanKind::Server, parent.as_ref(), attributes);
    let trace_id = trace.trace_id().to_string();
    req.extensions_mut().insert(RequestContext { request_id: request_id.clone(), trace });
    let state = req.app_data::<web::Data<AppState>>().cloned();

    let res = next.call(req).await;
    let request_id_value = HeaderValue::from_str(&request_id).ok();
    let (res, status) = match res {
        Ok(mut res) => {
            if let Some(v) = request_id_value {
                res.headers_mut().insert(REQUEST_ID, v);
            }
            let status = res.status().as_u16();
            (Ok(res), status)
        }
        // An error of the other middleware (408, 413, 414, 431): rendered here, so it carries the request id too.
        Err(e) => {
            let mut resp = e.error_response();
            if let Some(v) = request_id_value {
                resp.headers_mut().insert(REQUEST_ID, v);
            }
            let status = resp.status().as_u16();
            (Err(InternalError::from_response(e, resp).into()), status)
        }
    };
    span.set_attribute(telemetry::KeyValue::new("http.response.status_code", i64::from(status)));
    if status >= 500 {
        span.set_status(telemetry::Status::error(format!("HTTP {status}")));
    }
    let elapsed = start.elapsed();
    if let Some(state) = state {
        state.metrics.record_request(&route, &method, status, elapsed);
    }
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    log::info!(
        target: "ackbox_api::access",
        method = method.as_str(), route = route.as_str(), status, duration_ms,
        request_id = request_id.as_str(), trace_id = trace_id.as_str();
        "{method} {route} {status} {duration_ms:.1} ms request_id={request_id}"
    );
    res
}

#[cfg(test)]
mod tests {
    use super::valid_request_id;

    #[test]
    fn request_ids_are_short_plain_tokens() {
        assert_eq!(valid_request_id("req-42_a.b:c/d+e=f@g"), Some("req-42_a.b:c/d+e=f@g"));
        for bad in ["", "has space", "quote\"", "brace{", &"x".repeat(129), "é"] {
            assert_eq!(valid_request_id(bad), None, "{bad:?}");
        }
    }
}
