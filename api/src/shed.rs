//! Load shedding: at most `ACKBOX_MAX_IN_FLIGHT` requests are worked on at once; one more is answered 503 with
//! `Retry-After` at once instead of queueing behind them, so overload costs the client milliseconds, not minutes, and
//! the process's memory stays bounded. Long-polls are bounded by `ACKBOX_MAX_WAITERS` instead (a waiting request
//! holds no pool connection and almost no memory), and the ops paths (`/healthz`, `/readyz`, `/metrics`) are never
//! shed: an overloaded api must still say so.

use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use crate::error::ApiError;
use crate::state::AppState;

/// Requests being worked on.
#[derive(Debug, Default)]
pub struct InFlight(AtomicUsize);

/// Releases its slot when the request is done.
struct Slot<'a>(&'a InFlight);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl InFlight {
    fn take(&self, max: usize) -> Option<Slot<'_>> {
        if self.0.fetch_add(1, Ordering::SeqCst) >= max {
            self.0.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Slot(self))
    }
}

/// The ops paths, and long-polls (`Prefer: wait=N`, N > 0, read as `GET /v1/jobs/{id}` reads it).
fn exempt(req: &ServiceRequest) -> bool {
    matches!(req.path(), "/healthz" | "/readyz" | "/metrics")
        || crate::routes::prefer_wait(req.request()).is_some_and(|n| n > 0)
}

/// The middleware.
pub async fn limit_in_flight(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else { return next.call(req).await };
    if exempt(&req) {
        return next.call(req).await;
    }
    let Some(_slot) = state.in_flight.take(state.config.max_in_flight) else {
        state.metrics.overload_refused.with_label_values(&["in_flight"]).inc();
        return Err(ApiError::Overloaded.into());
    };
    next.call(req).await
}
