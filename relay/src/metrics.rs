//! The relay's Prometheus metrics.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Everything the relay reports.
#[derive(Clone)]
pub struct RelayMetrics {
    /// The registry served at `/metrics`.
    pub registry: Registry,
    /// `ackbox_relay_published_total`: rows acknowledged by the broker.
    pub published: IntCounter,
    /// `ackbox_relay_records_total`: Kafka records acknowledged by the broker (a packed record carries several rows:
    /// rows ÷ records is the packing achieved).
    pub records: IntCounter,
    /// `ackbox_relay_delivery_failures_total{class}`: failed deliveries, `retriable` or `fatal`.
    pub delivery_failures: IntCounterVec,
    /// `ackbox_relay_batch_size`: rows claimed per round.
    pub batch_size: Histogram,
    /// `ackbox_relay_delivery_seconds`: from the first send of a round to its last delivery report.
    pub delivery_seconds: Histogram,
    /// `ackbox_relay_producer_rebuilds_total`: producers replaced after a fatal error.
    pub producer_rebuilds: IntCounter,
    /// `ackbox_outbox_backlog`: rows not yet delivered.
    pub backlog: IntGauge,
    /// `ackbox_outbox_oldest_unpublished_age_seconds`.
    pub oldest_unpublished_age: prometheus::Gauge,
    /// `ackbox_outbox_deleted_total`: rows removed by retention.
    pub retention_deleted: IntCounter,
    /// `ackbox_jobs_deleted_total`: finished jobs removed by retention (each leaves a tombstone).
    pub jobs_deleted: IntCounter,
    /// `ackbox_rescuer_jobs_total{action}`: `requeued`, `failed` (lease expired on the last attempt), `cancelled`
    /// (lease expired after a cancel request) or `redispatched`.
    pub rescued: IntCounterVec,
    /// `ackbox_jobs{status}`: jobs by status.
    pub jobs_by_status: IntGaugeVec,
    /// `ackbox_db_oldest_transaction_age_seconds`: the oldest open transaction in the database, any session. A long
    /// one keeps vacuum from removing dead `outbox` and `jobs` versions, so claims slow down: alert above 60.
    pub oldest_transaction_age: prometheus::Gauge,
    /// `ackbox_db_dead_tuples{table}`: dead versions not yet vacuumed in `outbox`, `jobs`, `idempotency_keys`,
    /// `job_tombstones`, `callbacks`. They slow the relay's claim; alert when they keep growing.
    pub dead_tuples: IntGaugeVec,
    /// `ackbox_db_autovacuum{table}`: 1 when autovacuum looks after the table, 0 when it does not (then the relay
    /// vacuums it, if its role may).
    pub autovacuum: IntGaugeVec,
    /// `ackbox_relay_vacuums_total{table}`: vacuums the relay ran because autovacuum does not.
    pub vacuums: IntCounterVec,
}

impl RelayMetrics {
    /// Creates and registers every metric (plus process metrics: RSS, CPU, fds).
    pub fn new() -> Self {
        let reg = ackbox_runtime::ops::Registrar::new();
        Self {
            published: reg.add(
                IntCounter::new("ackbox_relay_published_total", "Outbox rows acknowledged by the broker.")
                    .expect("valid metric"),
            ),
            records: reg.add(
                IntCounter::new("ackbox_relay_records_total", "Kafka records acknowledged by the broker.")
                    .expect("valid metric"),
            ),
            delivery_failures: reg.add(
                IntCounterVec::new(
                    Opts::new("ackbox_relay_delivery_failures_total", "Failed deliveries by error class."),
                    &["class"],
                )
                .expect("valid metric"),
            ),
            batch_size: reg.add(
                Histogram::with_opts(
                    HistogramOpts::new("ackbox_relay_batch_size", "Outbox rows claimed per round.")
                        .buckets(vec![1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0]),
                )
                .expect("valid metric"),
            ),
            delivery_seconds: reg.add(
                Histogram::with_opts(
                    HistogramOpts::new(
                        "ackbox_relay_delivery_seconds",
                        "Time to get every delivery report of a round.",
                    )
                    .buckets(vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 10.0]),
                )
                .expect("valid metric"),
            ),
            producer_rebuilds: reg.add(
                IntCounter::new(
                    "ackbox_relay_producer_rebuilds_total",
                    "Kafka producers replaced after a fatal error.",
                )
                .expect("valid metric"),
            ),
            backlog: reg
                .add(IntGauge::new("ackbox_outbox_backlog", "Outbox rows not yet delivered.").expect("valid metric")),
            oldest_unpublished_age: reg.add(
                prometheus::Gauge::new(
                    "ackbox_outbox_oldest_unpublished_age_seconds",
                    "Age of the oldest undelivered outbox row.",
                )
                .expect("valid metric"),
            ),
            retention_deleted: reg.add(
                IntCounter::new("ackbox_outbox_deleted_total", "Published outbox rows deleted by retention.")
                    .expect("valid metric"),
            ),
            jobs_deleted: reg.add(
                IntCounter::new(
                    "ackbox_jobs_deleted_total",
                    "Finished jobs deleted by retention (ACKBOX_JOB_RETENTION_SECS), with their outbox rows and keys.",
                )
                .expect("valid metric"),
            ),
            rescued: reg.add(
                IntCounterVec::new(
                    Opts::new("ackbox_rescuer_jobs_total", "Jobs acted on by the rescuer."),
                    &["action"],
                )
                .expect("valid metric"),
            ),
            jobs_by_status: reg
                .add(IntGaugeVec::new(Opts::new("ackbox_jobs", "Jobs by status."), &["status"]).expect("valid metric")),
            oldest_transaction_age: reg.add(
                prometheus::Gauge::new(
                    "ackbox_db_oldest_transaction_age_seconds",
                    "Age of the oldest open transaction in the database (it holds back vacuum).",
                )
                .expect("valid metric"),
            ),
            dead_tuples: reg.add(
                IntGaugeVec::new(
                    Opts::new("ackbox_db_dead_tuples", "Dead versions not yet vacuumed, by table."),
                    &["table"],
                )
                .expect("valid metric"),
            ),
            autovacuum: reg.add(
                IntGaugeVec::new(
                    Opts::new("ackbox_db_autovacuum", "1 when autovacuum looks after the table, else 0."),
                    &["table"],
                )
                .expect("valid metric"),
            ),
            vacuums: reg.add(
                IntCounterVec::new(
                    Opts::new("ackbox_relay_vacuums_total", "Vacuums the relay ran where autovacuum does not."),
                    &["table"],
                )
                .expect("valid metric"),
            ),
            registry: reg.finish(),
        }
    }
}

impl Default for RelayMetrics {
    fn default() -> Self {
        Self::new()
    }
}
