#![doc = include_str!("../README.md")]

pub mod config;
pub mod errors;
pub mod maintenance;
pub mod metrics;
mod records;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ackbox_db::db::{DbError, PgPool};
use ackbox_db::models::OutboxMessage;
use ackbox_db::outbox;
use ackbox_runtime::listen::{spawn_listener, OUTBOX_CHANNEL};
use ackbox_runtime::telemetry::{self, SpanMethods as _};
use ackbox_types::trace::{TraceContext, TRACEPARENT, TRACESTATE};
use chrono::Utc;
use diesel::Connection;
use futures::future::{join_all, Either};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::{watch, Notify};

use crate::config::RelayConfig;
use crate::errors::{classify, ErrorClass};
use crate::metrics::RelayMetrics;

/// Why a relay round failed as a whole (single-row delivery failures are not errors: they are recorded and retried).
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Postgres unreachable or a query failed; the round rolled back and its rows stay unpublished.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The producer could not be created.
    #[error("cannot create the Kafka producer: {0}")]
    Producer(#[from] KafkaError),
}

impl From<diesel::result::Error> for RelayError {
    fn from(e: diesel::result::Error) -> Self {
        RelayError::Db(e.into())
    }
}

/// What one round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Rows claimed.
    pub claimed: usize,
    /// Rows the broker acknowledged, now marked published.
    pub published: usize,
    /// Rows whose delivery failed, now backed off.
    pub failed: usize,
    /// Whether a fatal error made the relay replace its producer.
    pub rebuilt_producer: bool,
    /// When the earliest remaining unpublished row is due (only computed when the round was not full).
    pub next_due: Option<chrono::DateTime<Utc>>,
}

/// The outbox → Kafka mover. Any number may run against one table: `FOR UPDATE SKIP LOCKED` hands each row to one
/// relay at a time, and an idempotent producer keeps retries inside librdkafka from duplicating messages.
pub struct Relay {
    pool: PgPool,
    producer: Mutex<Arc<FutureProducer>>,
    config: RelayConfig,
    metrics: RelayMetrics,
    /// Tables the relay has warned it cannot vacuum (once each per process: the gauge keeps saying it).
    vacuum_warned: Mutex<std::collections::BTreeSet<ackbox_db::vacuum::Table>>,
}

impl Relay {
    /// Builds the producer (`enable.idempotence=true`, `acks=all`).
    pub fn new(pool: PgPool, config: RelayConfig, metrics: RelayMetrics) -> Result<Self, RelayError> {
        let producer = build_producer(&config)?;
        Ok(Self::with_producer(pool, config, metrics, producer))
    }

    /// A relay around a producer from [`start_producer`], built earlier so that it is ready by the first round.
    pub fn with_producer(pool: PgPool, config: RelayConfig, metrics: RelayMetrics, producer: FutureProducer) -> Self {
        Self { pool, producer: Mutex::new(Arc::new(producer)), config, metrics, vacuum_warned: Mutex::default() }
    }

    /// The configuration.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// The database pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The metrics.
    pub fn metrics(&self) -> &RelayMetrics {
        &self.metrics
    }

    fn producer(&self) -> Arc<FutureProducer> {
        self.producer.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the producer after a fatal error: an idempotent producer that lost its state cannot recover.
    fn rebuild_producer(&self) -> Result<(), RelayError> {
        let fresh = Arc::new(start_producer(&self.config)?);
        *self.producer.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
        self.metrics.producer_rebuilds.inc();
        log::warn!("rebuilt the Kafka producer after a fatal error");
        Ok(())
    }

    /// One round, blocking: claim a batch, produce all of it, await every delivery report together, then mark the
    /// acknowledged rows published and the failed ones backed off, all before the claiming transaction commits. If
    /// the process dies mid-round the transaction rolls back and the rows are produced again later: at-least-once.
    pub fn round(&self) -> Result<Round, RelayError> {
        let mut conn = self.pool.get().map_err(DbError::from)?;
        let producer = self.producer();
        let (mut round, fatal) = conn.transaction(|conn| -> Result<(Round, bool), RelayError> {
            let rows = outbox::claim_batch(conn, self.config.batch)?;
            if rows.is_empty() {
                return Ok((Round::default(), false));
            }
            let started = Instant::now();
            let Produced { published, failed, records } = produce_all(&producer, &self.config, &rows);
            self.metrics.delivery_seconds.observe(started.elapsed().as_secs_f64());
            outbox::mark_published(conn, &published)?;
            let mut fatal = false;
            let (mut failures, mut dead) = (Vec::new(), Vec::new());
            for Failed { id, error: err, packed } in failed {
                let class = classify(&err);
                let job_id = rows.iter().find(|r| r.id == id).map(|r| r.aggregate_id.to_string()).unwrap_or_default();
                fatal |= class == ErrorClass::Fatal;
                self.metrics.delivery_failures.with_label_values(&[class.as_str()]).inc();
                if class == ErrorClass::Undeliverable && !packed {
                    log::error!(
                        outbox_id = id, job_id = job_id.as_str();
                        "outbox row {id} can never be delivered ({err}); marking it dead and failing its job"
                    );
                    dead.push((id, err.to_string()));
                } else if class == ErrorClass::Undeliverable {
                    // Which row of the record made the broker refuse it is unknown: each is retried alone
                    // (`records.rs`), and only a row refused on its own is dead.
                    log::warn!(
                        outbox_id = id, job_id = job_id.as_str();
                        "outbox row {id}: the packed record it was in was refused ({err}); retrying it alone"
                    );
                    failures.push((id, format!("packed record refused: {err}")));
                } else {
                    log::warn!(
                        outbox_id = id, job_id = job_id.as_str();
                        "outbox row {id} delivery failed ({}), will retry: {err}", class.as_str()
                    );
                    failures.push((id, err.to_string()));
                }
            }
            outbox::mark_failed(conn, &failures)?;
            // A dead row's job can never be dispatched by that message: fail it now, with the broker's reason.
            let dead_jobs = outbox::mark_dead(conn, &dead)?;
            ackbox_db::state::fail_undeliverable(conn, &dead_jobs)?;
            self.metrics.batch_size.observe(rows.len() as f64);
            self.metrics.published.inc_by(published.len() as u64);
            self.metrics.records.inc_by(records as u64);
            let round = Round {
                claimed: rows.len(),
                published: published.len(),
                failed: failures.len() + dead.len(),
                rebuilt_producer: false,
                next_due: None,
            };
            Ok((round, fatal))
        })?;
        // librdkafka may also raise a fatal error outside any delivery report (idempotence state lost).
        if fatal || producer.client().fatal_error().is_some() {
            self.rebuild_producer()?;
            round.rebuilt_producer = true;
        }
        if (round.claimed as i64) < self.config.batch {
            round.next_due = outbox::next_due(&mut conn)?;
        }
        Ok(round)
    }

    /// Waits for everything still queued in the producer (called on shutdown; dropping a producer purges its queue).
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer().flush(timeout) {
            log::warn!("producer flush on shutdown: {e}");
        }
    }
}

/// Builds the relay's producer and has it connect at once, for [`Relay::with_producer`]. An idempotent producer sends
/// nothing until the broker has given it a producer id, and librdkafka asks for one only when a broker connection is
/// up, retrying every 500 ms otherwise; with connections opened on demand, the first two tries found none, so a
/// relay's first round waited about a second after start-up (measured on nisshi; `bench/findings.md`, session 12).
/// A metadata request opens the connection: started first, it overlaps the rest of the start-up.
pub fn start_producer(config: &RelayConfig) -> Result<FutureProducer, KafkaError> {
    let producer = build_producer(config)?;
    let warm = producer.clone();
    std::thread::spawn(move || {
        // Only to connect: the answer is not needed, and a broker that is down is the rounds' to report.
        let _ = warm.client().fetch_metadata(None, Duration::from_secs(10));
    });
    Ok(producer)
}

fn build_producer(config: &RelayConfig) -> Result<FutureProducer, KafkaError> {
    config
        .kafka
        .client_config()
        .set("enable.idempotence", config.idempotence.to_string())
        .set("acks", "all")
        .set("linger.ms", config.linger.as_millis().to_string())
        .set("max.in.flight.requests.per.connection", config.max_in_flight.to_string())
        .set("message.timeout.ms", config.delivery_timeout.as_millis().to_string())
        .create()
}

/// Sends every record of the round (`records.rs`: a topic's rows packed together), then waits for all reports at
/// once: awaiting each send before the next would cost a broker round trip per record. `send_result` enqueues
/// immediately, unlike `send`, which does nothing until polled. A record's report is each of its rows' report; a
/// failed row says whether it travelled packed (a packed record refused for good is retried row by row).
fn produce_all(producer: &FutureProducer, config: &RelayConfig, rows: &[OutboxMessage]) -> Produced {
    let records = records::records(rows, config.record_jobs, |row| records::topic(config, row));
    // A span per row of a traced job, child of the submit span the row carries; it ends with the broker's report.
    let mut spans: Vec<Option<telemetry::Span>> = rows.iter().map(|_| None).collect();
    for record in &records {
        for &i in &record.rows {
            spans[i] = publish_span(&rows[i], &record.topic);
        }
    }
    let pending: Vec<_> = records
        .iter()
        .map(|record| {
            let out =
                FutureRecord::to(&record.topic).key(&record.key).payload(&record.value).headers(record.headers.clone());
            match producer.send_result(out) {
                Ok(delivery) => Either::Left(async move {
                    match delivery.await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err((e, _))) => Err(e),
                        Err(_) => Err(KafkaError::Canceled),
                    }
                }),
                // Queue full or a local error: fail this record's rows now; a later round retries them.
                Err((e, _)) => Either::Right(futures::future::ready(Err(e))),
            }
        })
        .collect();
    let reports = futures::executor::block_on(join_all(pending));
    let mut published = Vec::with_capacity(rows.len());
    let mut failed = Vec::new();
    let mut acked = 0;
    for (record, report) in records.iter().zip(reports) {
        acked += usize::from(report.is_ok());
        for &i in &record.rows {
            match &report {
                Ok(()) => published.push(rows[i].id),
                Err(e) => {
                    if let Some(span) = spans[i].as_mut() {
                        span.set_status(telemetry::Status::error(e.to_string()));
                    }
                    failed.push(Failed { id: rows[i].id, error: e.clone(), packed: record.packed() });
                }
            }
        }
    }
    Produced { published, failed, records: acked }
}

/// What [`produce_all`] got back from the broker.
struct Produced {
    /// Rows acknowledged.
    published: Vec<i64>,
    /// Rows not acknowledged.
    failed: Vec<Failed>,
    /// Records acknowledged.
    records: usize,
}

/// A row whose record the broker did not acknowledge.
struct Failed {
    id: i64,
    error: KafkaError,
    /// It travelled in a packed record.
    packed: bool,
}

/// The span of one row's publish, if the row carries a trace context (rows of jobs from before migration 7 do not).
fn publish_span(row: &OutboxMessage, topic: &str) -> Option<telemetry::Span> {
    let traceparent = row.headers.get(TRACEPARENT)?.as_str()?;
    let parent = TraceContext::parse(traceparent, row.headers.get(TRACESTATE).and_then(|v| v.as_str()))?;
    let attributes = vec![
        telemetry::KeyValue::new("messaging.system", "kafka"),
        telemetry::KeyValue::new("messaging.operation.type", "send"),
        telemetry::KeyValue::new("messaging.destination.name", topic.to_string()),
        telemetry::KeyValue::new("ackbox.job_id", row.aggregate_id.to_string()),
        telemetry::KeyValue::new("ackbox.outbox_id", row.id),
    ];
    Some(telemetry::start_span(format!("send {topic}"), telemetry::SpanKind::Producer, Some(&parent), attributes).0)
}

/// Runs rounds until `shutdown` turns true: back to back while batches come back full, otherwise sleeping until a
/// NOTIFY on `ackbox_outbox`, the next due row, or the poll interval, whichever is first. The rescuer, retention and
/// gauges run beside it ([`maintenance::run`]).
pub async fn run(relay: Arc<Relay>, shutdown: watch::Receiver<bool>) {
    let maintenance = tokio::spawn(maintenance::run(relay.clone(), shutdown.clone()));
    // One LISTEN connection wakes all round loops of this process. Several loops pipeline the work: while one waits
    // for its delivery reports, another claims the next rows (SKIP LOCKED keeps their batches apart).
    let wake = Arc::new(Notify::new());
    let listener = spawn_listener(relay.config.db.url.clone(), &[OUTBOX_CHANNEL], wake.clone());
    let loops: Vec<_> = (0..relay.config.concurrency.max(1))
        .map(|_| tokio::spawn(relay_loop(relay.clone(), wake.clone(), shutdown.clone())))
        .collect();
    for l in loops {
        let _ = l.await;
    }
    listener.abort();
    let _ = maintenance.await;
    let r = relay.clone();
    let _ = tokio::task::spawn_blocking(move || r.flush(Duration::from_secs(10))).await;
    log::info!("relay stopped");
}

async fn relay_loop(relay: Arc<Relay>, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    let mut error_backoff = ackbox_runtime::retry::Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    while !*shutdown.borrow() {
        let r = relay.clone();
        let wait = match ackbox_runtime::retry::blocking(move || r.round()).await {
            Ok(round) => {
                error_backoff.reset();
                if round.claimed as i64 >= relay.config.batch {
                    continue;
                }
                if round.claimed > 0 {
                    // More may have arrived while this round was producing: pass the wake-up on.
                    wake.notify_one();
                }
                let until_due = round
                    .next_due
                    .map(|due| (due - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                    .unwrap_or(relay.config.poll_interval);
                until_due.min(relay.config.poll_interval)
            }
            Err(e) => {
                let wait = error_backoff.next_delay();
                log::error!("relay round failed, retrying in {wait:?}: {e}");
                wait
            }
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
}
