//! Load shedding: at most `ACKBOX_MAX_IN_FLIGHT` requests are worked on at once; one more is answered 503 with
//! `Retry-After` at once instead of queueing behind them, so overload costs the client milliseconds, not minutes, and
//! the process's memory stays bounded. Long-polls are bounded by `ACKBOX_MAX_WAITERS` instead (a waiting request
//! holds no pool connection and almost no memory), and the ops paths (`/healthz`, `/readyz`, `/metrics`) are never
//! shed: an overloaded api must still say so.
//!
//! A batch (`POST /v1/jobs/batch`) counts once against `ACKBOX_MAX_IN_FLIGHT` but holds up to a thousand jobs: its
//! body, the parsed jobs, the rows written and the answer, several MiB in all. So at most `ACKBOX_MAX_BATCHES` are
//! worked on at once, and the others wait, in arrival order, for a slot **before their body is read** (a waiting batch
//! holds its connection, not its jobs); past `ACKBOX_BATCH_QUEUE` waiting, one more gets 503 with `Retry-After` at
//! once. The api's memory is then bounded by the slots, not by how many clients send batches.

use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use tokio::sync::{Semaphore, SemaphorePermit};

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

/// Slots for batch requests, and how many wait for one.
#[derive(Debug)]
pub struct BatchSlots {
    slots: Semaphore,
    waiting: AtomicUsize,
}

/// Counts a batch out of the queue when it stops waiting, with a slot or without (its client went away).
struct Waiting<'a>(&'a BatchSlots, &'a prometheus::IntGauge);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
        self.1.dec();
    }
}

impl BatchSlots {
    /// `slots` batches worked on at once.
    pub fn new(slots: usize) -> Self {
        Self { slots: Semaphore::new(slots), waiting: AtomicUsize::new(0) }
    }

    /// A free slot at once, or one after waiting behind the batches already waiting; `None` when `queue` batches
    /// already wait (the caller answers 503). Tokio's semaphore is fair, so batches get slots in arrival order.
    async fn take(&self, queue: usize, gauge: &prometheus::IntGauge) -> Option<SemaphorePermit<'_>> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Some(permit);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        gauge.inc();
        let _waiting = Waiting(self, gauge);
        // The semaphore is never closed, so this only fails if it were.
        self.slots.acquire().await.ok()
    }
}

/// The batch route's middleware: a slot for the whole request (body, transaction and answer), or 503.
pub async fn limit_batches(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else { return next.call(req).await };
    if req.method() != actix_web::http::Method::POST {
        return next.call(req).await;
    }
    let Some(_slot) = state.batches.take(state.config.batch_queue, &state.metrics.batch_queued).await else {
        state.metrics.overload_refused.with_label_values(&["batches"]).inc();
        return Err(ApiError::Overloaded.into());
    };
    next.call(req).await
}
