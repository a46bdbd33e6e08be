//! The worker's Prometheus metrics.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Everything the worker reports.
#[derive(Clone)]
pub struct WorkerMetrics {
    /// The registry served at `/metrics`.
    pub registry: Registry,
    /// `ackbox_worker_consumer_lag{topic,partition}`: messages behind the partition end (from librdkafka statistics),
    /// per priority lane's topic.
    pub consumer_lag: IntGaugeVec,
    /// `ackbox_worker_attempts_total`: attempts started (claims that applied).
    pub attempts: IntCounter,
    /// `ackbox_worker_outcomes_total{outcome}`: `succeeded`, `retried`, `failed`, `cancelled`, `stale`, `released`.
    pub outcomes: IntCounterVec,
    /// `ackbox_worker_failures_total{code}`: failed attempts by error code.
    pub failures: IntCounterVec,
    /// `ackbox_worker_decode_failures_total`: messages that were not valid envelopes.
    pub decode_failures: IntCounter,
    /// `ackbox_worker_skipped_kinds_total`: dispatches of kinds this worker has no handler for (left queued).
    pub skipped_kinds: IntCounter,
    /// `ackbox_worker_parked_total`: messages held back because their queue was at its cap
    /// (`ACKBOX_QUEUE_CONCURRENCY`).
    pub parked: IntCounter,
    /// `ackbox_worker_rebalances_total{kind}`: partition assignments and revocations this worker went through.
    pub rebalances: IntCounterVec,
    /// `ackbox_worker_paused_seconds_total`: time the partitions were paused because every slot was busy.
    pub paused_seconds: prometheus::Counter,
    /// `ackbox_worker_duplicate_deliveries_total`: messages that claimed nothing (duplicates, finished jobs).
    pub duplicates: IntCounter,
    /// `ackbox_worker_leases_lost_total`: running attempts whose heartbeat found the lease gone.
    pub leases_lost: IntCounter,
    /// `ackbox_worker_in_flight`: attempts running or awaiting their status write.
    pub in_flight: IntGauge,
    /// `ackbox_worker_job_duration_seconds{kind}`: handler run time.
    pub job_duration: HistogramVec,
    /// `ackbox_worker_time_to_start_seconds`: from acceptance (commit of the 202) to the claim of an attempt.
    pub time_to_start: Histogram,
}

const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

impl WorkerMetrics {
    /// Creates and registers every metric (plus process metrics).
    pub fn new() -> Self {
        let reg = ackbox_runtime::ops::Registrar::new();
        Self {
            consumer_lag: reg.add(
                IntGaugeVec::new(
                    Opts::new(
                        "ackbox_worker_consumer_lag",
                        "Messages between the committed offset and the partition end.",
                    ),
                    &["topic", "partition"],
                )
                .expect("valid metric"),
            ),
            attempts: reg
                .add(IntCounter::new("ackbox_worker_attempts_total", "Attempts started.").expect("valid metric")),
            outcomes: reg.add(
                IntCounterVec::new(
                    Opts::new("ackbox_worker_outcomes_total", "Recorded attempt outcomes."),
                    &["outcome"],
                )
                .expect("valid metric"),
            ),
            failures: reg.add(
                IntCounterVec::new(
                    Opts::new("ackbox_worker_failures_total", "Failed attempts by error code."),
                    &["code"],
                )
                .expect("valid metric"),
            ),
            decode_failures: reg.add(
                IntCounter::new(
                    "ackbox_worker_decode_failures_total",
                    "Messages skipped because they were not valid envelopes.",
                )
                .expect("valid metric"),
            ),
            rebalances: reg.add(
                IntCounterVec::new(
                    Opts::new("ackbox_worker_rebalances_total", "Partition assignments and revocations (kind)."),
                    &["kind"],
                )
                .expect("valid metric"),
            ),
            paused_seconds: reg.add(
                prometheus::Counter::new(
                    "ackbox_worker_paused_seconds_total",
                    "Seconds the worker's partitions were paused because every slot was busy.",
                )
                .expect("valid metric"),
            ),
            skipped_kinds: reg.add(
                IntCounter::new(
                    "ackbox_worker_skipped_kinds_total",
                    "Dispatches of kinds this worker has no handler for, left queued for a worker that runs them.",
                )
                .expect("valid metric"),
            ),
            parked: reg.add(
                IntCounter::new(
                    "ackbox_worker_parked_total",
                    "Messages held back, unclaimed, because their queue was at its cap (ACKBOX_QUEUE_CONCURRENCY).",
                )
                .expect("valid metric"),
            ),
            duplicates: reg.add(
                IntCounter::new(
                    "ackbox_worker_duplicate_deliveries_total",
                    "Messages whose job was not claimable (duplicate or already finished).",
                )
                .expect("valid metric"),
            ),
            leases_lost: reg.add(
                IntCounter::new("ackbox_worker_leases_lost_total", "Attempts that lost their lease while running.")
                    .expect("valid metric"),
            ),
            in_flight: reg.add(
                IntGauge::new("ackbox_worker_in_flight", "Attempts running or awaiting their status write.")
                    .expect("valid metric"),
            ),
            job_duration: reg.add(
                HistogramVec::new(
                    HistogramOpts::new("ackbox_worker_job_duration_seconds", "Handler run time.")
                        .buckets(LATENCY_BUCKETS.to_vec()),
                    &["kind"],
                )
                .expect("valid metric"),
            ),
            time_to_start: reg.add(
                Histogram::with_opts(
                    HistogramOpts::new(
                        "ackbox_worker_time_to_start_seconds",
                        "From acceptance to the start of an attempt.",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                )
                .expect("valid metric"),
            ),
            registry: reg.finish(),
        }
    }
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        Self::new()
    }
}
