//! The API's Prometheus metrics (`observe` records every request into them).

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

/// Everything the API reports at `/metrics`.
#[derive(Clone)]
pub struct ApiMetrics {
    /// The registry.
    pub registry: Registry,
    /// `ackbox_http_requests_total{route,method,status}`.
    pub requests: IntCounterVec,
    /// `ackbox_http_request_duration_seconds{route,method}`.
    pub duration: HistogramVec,
    /// `ackbox_jobs_submitted_total{kind}`: new jobs accepted (replays not counted).
    pub submitted: IntCounterVec,
    /// `ackbox_long_poll_waiters`: requests currently waiting on `Prefer: wait`.
    pub waiters: IntGauge,
    /// `ackbox_listener_connected`: 1 while the process's LISTEN connection is up (long-polls are woken at once and
    /// revoked keys refused at once), 0 while it reconnects.
    pub listener_connected: IntGauge,
    /// `ackbox_submit_batch_size`: submissions per group-commit transaction.
    pub submit_batch: Histogram,
    /// `ackbox_submit_queued`: submissions waiting for a group-commit transaction.
    pub submit_queued: IntGauge,
    /// `ackbox_batch_queued`: batch requests waiting for a slot (`ACKBOX_MAX_BATCHES`).
    pub batch_queued: IntGauge,
    /// `ackbox_overload_refused_total{reason}`: requests answered 503 at once because a bound was reached.
    pub overload_refused: IntCounterVec,
    /// `ackbox_callbacks_total{outcome}`: completion callback attempts by outcome (`delivered`, `retrying`,
    /// `gave_up`).
    pub callbacks: IntCounterVec,
}

impl ApiMetrics {
    /// Creates and registers every metric (plus process metrics).
    pub fn new() -> Self {
        let reg = ackbox_runtime::ops::Registrar::new();
        Self {
            requests: reg.add(
                IntCounterVec::new(
                    Opts::new("ackbox_http_requests_total", "HTTP requests by route, method and status."),
                    &["route", "method", "status"],
                )
                .expect("valid metric"),
            ),
            duration: reg.add(
                HistogramVec::new(
                    HistogramOpts::new(
                        "ackbox_http_request_duration_seconds",
                        "HTTP request latency by route and method.",
                    )
                    .buckets(vec![
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0,
                    ]),
                    &["route", "method"],
                )
                .expect("valid metric"),
            ),
            submitted: reg.add(
                IntCounterVec::new(Opts::new("ackbox_jobs_submitted_total", "Jobs accepted by kind."), &["kind"])
                    .expect("valid metric"),
            ),
            listener_connected: reg.add(
                IntGauge::new("ackbox_listener_connected", "1 while the LISTEN connection is up.")
                    .expect("valid metric"),
            ),
            waiters: reg.add(
                IntGauge::new("ackbox_long_poll_waiters", "Requests waiting on Prefer: wait.").expect("valid metric"),
            ),
            submit_batch: reg.add(
                Histogram::with_opts(
                    HistogramOpts::new("ackbox_submit_batch_size", "Submissions per group-commit transaction.")
                        .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0]),
                )
                .expect("valid metric"),
            ),
            submit_queued: reg.add(
                IntGauge::new("ackbox_submit_queued", "Submissions waiting for a group-commit transaction.")
                    .expect("valid metric"),
            ),
            batch_queued: reg.add(
                IntGauge::new("ackbox_batch_queued", "Batch requests waiting for a slot (ACKBOX_MAX_BATCHES).")
                    .expect("valid metric"),
            ),
            overload_refused: reg.add(
                IntCounterVec::new(
                    Opts::new(
                        "ackbox_overload_refused_total",
                        "Requests refused at once with 503 because a bound was reached.",
                    ),
                    &["reason"],
                )
                .expect("valid metric"),
            ),
            callbacks: reg.add(
                IntCounterVec::new(
                    Opts::new("ackbox_callbacks_total", "Completion callback attempts by outcome."),
                    &["outcome"],
                )
                .expect("valid metric"),
            ),
            registry: reg.finish(),
        }
    }
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiMetrics {
    /// Counts a finished request and its latency under its route pattern (never the raw path: ids would explode the
    /// label set). Called once per request by [`crate::observe::observe`].
    pub fn record_request(&self, route: &str, method: &str, status: u16, elapsed: std::time::Duration) {
        self.requests.with_label_values(&[route, method, &status.to_string()]).inc();
        self.duration.with_label_values(&[route, method]).observe(elapsed.as_secs_f64());
    }
}
