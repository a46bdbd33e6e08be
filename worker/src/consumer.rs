//! The worker loop: consume dispatch messages, claim their jobs in batches, run handlers with bounded concurrency,
//! record outcomes in batches, and store each partition's offset only after the statuses behind it are committed.
//!
//! ```text
//!  Kafka ──recv──▶ [batch] ──claim (1 UPDATE)──▶ spawn handler tasks ──outcome──▶ completer
//!                                                   (≤ concurrency)               │ 1 transaction per batch:
//!                                                                                 │ complete + fail/retry (+outbox)
//!                                                                                 ▼
//!                                                                store offsets (contiguous prefix only)
//! ```
//!
//! One file per concern, all in `worker/src/`: `context.rs` (librdkafka callbacks and rebalances), `membership.rs`
//! (building the consumer, joining and leaving the group), this file (the receive loop), `dispatch.rs` (claim and
//! run), `heartbeat.rs` (leases, and cancel requests as a backstop), `cancels.rs` (cancel requests by `LISTEN`),
//! `outcome.rs` (checks on results and errors), `completer.rs` (status writes, then offsets), `kinds.rs` (this
//! worker's kinds in `job_kinds`), `lag.rs` (consumer lag reports) and `shared.rs` (the state they share).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ackbox_db::db::PgPool;
use ackbox_types::envelope::Envelope;
use ackbox_types::trace::{TraceContext, TRACEPARENT, TRACESTATE};
use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::Message;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::cancels::spawn_cancel_listener;
use crate::completer::complete_loop;
use crate::config::WorkerConfig;
use crate::dispatch::dispatch;
use crate::handler::Registry;
use crate::heartbeat::heartbeat_loop;
use crate::kinds::kinds_loop;
use crate::lag::lag_report_loop;
use crate::membership::{build_consumer, leave_group};
use crate::metrics::WorkerMetrics;
use crate::offsets::OffsetTracker;
use crate::shared::{Outcome, Shared};

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The consumer could not be created or subscribed.
    #[error("kafka consumer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// librdkafka raised a fatal error: the consumer cannot go on (for example another process joined the group
    /// with the same `ACKBOX_WORKER_INSTANCE_ID` and fenced this one).
    #[error("fatal kafka consumer error {code:?}: {reason}")]
    Fatal {
        /// librdkafka's error code.
        code: rdkafka::types::RDKafkaErrorCode,
        /// librdkafka's description.
        reason: String,
    },
}

/// A message taken off Kafka, detached from the consumer's buffer.
pub(crate) struct Delivered {
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) envelope: Option<Envelope>,
    /// The W3C trace context in the record's headers (the submit span's), if any.
    pub(crate) trace: Option<TraceContext>,
}

/// What one polled result turned out to be.
enum Accepted {
    Message(Delivered),
    /// A consumer error worth logging and going on.
    Error,
    /// librdkafka raised a fatal error.
    Fatal(WorkerError),
}

fn accept(shared: &Shared, m: Result<rdkafka::message::BorrowedMessage<'_>, rdkafka::error::KafkaError>) -> Accepted {
    match m {
        Ok(m) => Accepted::Message(Delivered {
            partition: m.partition(),
            offset: m.offset(),
            trace: trace_context(&m),
            envelope: match Envelope::decode(m.payload()) {
                Ok(env) => Some(env),
                Err(e) => {
                    shared.metrics.decode_failures.inc();
                    log::warn!(
                        "skipping undecodable message at partition {} offset {}: {e}",
                        m.partition(),
                        m.offset()
                    );
                    None
                }
            },
        }),
        Err(e) => {
            if let Some((code, reason)) = shared.consumer.client().fatal_error() {
                return Accepted::Fatal(WorkerError::Fatal { code, reason });
            }
            log::warn!("kafka consumer error: {e}");
            Accepted::Error
        }
    }
}

/// The record's `traceparent` and `tracestate` headers, if it carries a valid context.
fn trace_context(m: &rdkafka::message::BorrowedMessage<'_>) -> Option<TraceContext> {
    use rdkafka::message::Headers;
    let headers = m.headers()?;
    let header = |name: &str| {
        headers.iter().find(|h| h.key == name).and_then(|h| h.value).and_then(|v| std::str::from_utf8(v).ok())
    };
    TraceContext::parse(header(TRACEPARENT)?, header(TRACESTATE))
}

/// How long the loop simply waits for a slot before it pauses its partitions. Short jobs free a slot within
/// milliseconds, and pausing is not free: librdkafka drops a paused partition's prefetched messages and fetches them
/// again on resume, which under a fast drain would cost more than the wait (`make bench` measured a fivefold drop).
const PAUSE_AFTER: Duration = Duration::from_secs(1);

/// Waits for a free slot: briefly as is, then with the assigned partitions paused, polling Kafka at least every
/// second (a poll is what keeps a member in its group past `max.poll.interval.ms`; a paused partition fetches
/// nothing, so nothing piles up). A message that was already fetched is kept in `pending`. Returns `Ok(false)` on
/// shutdown.
async fn wait_for_slot(
    shared: &Shared,
    semaphore: &Semaphore,
    pending: &mut VecDeque<Delivered>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<bool, WorkerError> {
    tokio::select! {
        // Released at once: this only waits for one to be free.
        free = tokio::time::timeout(PAUSE_AFTER, semaphore.acquire()) => if free.is_ok() { return Ok(true) },
        _ = shutdown.changed() => return Ok(false),
    }
    let assignment = shared.consumer.assignment().ok();
    if let Some(tpl) = &assignment {
        if let Err(e) = shared.consumer.pause(tpl) {
            log::debug!("pausing partitions: {e}");
        }
    }
    let started = std::time::Instant::now();
    let outcome = loop {
        if semaphore.available_permits() > 0 {
            break Ok(true);
        }
        tokio::select! {
            // Released at once: this only waits for one to be free.
            _ = semaphore.acquire() => {}
            m = tokio::time::timeout(Duration::from_secs(1), shared.consumer.recv()) => {
                if let Ok(m) = m {
                    match accept(shared, m) {
                        Accepted::Message(d) => pending.push_back(d),
                        Accepted::Error => {}
                        Accepted::Fatal(e) => break Err(e),
                    }
                }
            }
            _ = shutdown.changed() => break Ok(false),
        }
    };
    // Partitions revoked meanwhile cannot be resumed; the new assignment was never paused.
    if let Some(tpl) = &assignment {
        let _ = shared.consumer.resume(tpl);
    }
    shared.metrics.paused_seconds.inc_by(started.elapsed().as_secs_f64());
    outcome
}

/// Runs until `shutdown` turns true, then stops taking messages, lets in-flight jobs finish (bounded by the job
/// timeout), writes their outcomes, and commits the stored offsets synchronously.
pub async fn run(
    config: WorkerConfig,
    pool: PgPool,
    registry: Registry,
    metrics: WorkerMetrics,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), WorkerError> {
    let lag = Arc::new(Mutex::new(None));
    let held = Arc::new(AtomicUsize::new(0));
    let consumer = build_consumer(&config, &metrics, lag.clone(), held.clone())?;
    let concurrency = config.concurrency;
    let shared = Arc::new(Shared {
        config,
        pool,
        kinds: registry.kinds(),
        registry,
        consumer,
        metrics,
        tracker: Mutex::new(OffsetTracker::new()),
        running: Mutex::new(HashMap::new()),
        beat_now: tokio::sync::Notify::new(),
    });
    let cancels = spawn_cancel_listener(shared.clone());
    let semaphore = Arc::new(Semaphore::new(concurrency));
    let (done_tx, done_rx) = mpsc::unbounded_channel::<Outcome>();
    let completer = tokio::spawn(complete_loop(shared.clone(), done_rx));
    let heartbeat_stop = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat_loop(shared.clone(), heartbeat_stop.clone()));
    let lag_reporter = tokio::spawn(lag_report_loop(shared.clone(), lag, heartbeat_stop.clone()));
    let kinds = tokio::spawn(kinds_loop(shared.clone(), heartbeat_stop.clone()));

    log::info!(
        "worker consuming {} as group {} (concurrency {}, {})",
        shared.config.kafka.topic,
        shared.config.group,
        concurrency,
        match &shared.config.instance_id {
            Some(id) => format!("static member {id}"),
            None => "dynamic member".to_string(),
        }
    );
    let mut fatal = None;
    // Messages that arrived while the partitions were paused, taken before any new one.
    let mut pending: VecDeque<Delivered> = VecDeque::new();
    while !*shutdown.borrow() {
        // Every slot busy: pause the partitions and keep polling (the group must not think we are stuck) until one
        // frees up. Slots are taken per message, so a batch never waits for room it does not need.
        if semaphore.available_permits() == 0 {
            match wait_for_slot(&shared, &semaphore, &mut pending, &mut shutdown).await {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    fatal = Some(e);
                    break;
                }
            }
        }
        let room = semaphore.available_permits().clamp(1, shared.config.batch);
        let mut batch: Vec<Delivered> = pending.drain(..room.min(pending.len())).collect();
        if batch.is_empty() {
            let first = tokio::select! {
                m = shared.consumer.recv() => m,
                _ = shutdown.changed() => break,
            };
            match accept(&shared, first) {
                Accepted::Message(d) => batch.push(d),
                Accepted::Error => tokio::time::sleep(Duration::from_millis(100)).await,
                Accepted::Fatal(e) => fatal = Some(e),
            }
        }
        // Take what is already buffered, without waiting: one claim UPDATE for all of it.
        while fatal.is_none() && batch.len() < room {
            let Some(m) = shared.consumer.recv().now_or_never() else { break };
            match accept(&shared, m) {
                Accepted::Message(d) => batch.push(d),
                Accepted::Error => break,
                Accepted::Fatal(e) => fatal = Some(e),
            }
        }
        if !batch.is_empty() {
            // Reserve the in-flight slots before claiming, so a claimed job always has a slot to run in. Only this
            // loop takes permits and `room` were free, so this does not wait.
            let Ok(mut permits) = semaphore.clone().acquire_many_owned(batch.len() as u32).await else { break };
            dispatch(&shared, batch, &mut permits, &done_tx).await;
        }
        if fatal.is_some() {
            break;
        }
    }
    if let Some(WorkerError::Fatal { code, reason }) = &fatal {
        log::error!(
            "kafka consumer failed fatally ({code:?}: {reason}); stopping{}",
            if *code == rdkafka::types::RDKafkaErrorCode::FencedInstanceId {
                " (another process uses the same ACKBOX_WORKER_INSTANCE_ID: give every replica its own)"
            } else {
                ""
            }
        );
    }

    log::info!("worker stopping: waiting for in-flight jobs");
    drop(done_tx);
    let drain = tokio::time::timeout(shared.config.shutdown_grace, completer).await;
    if drain.is_err() {
        // Past the grace period: tell handlers to stop. Unrecorded attempts keep their leases until they lapse, and
        // the rescuer retries them; nothing is lost.
        for r in shared.running().values() {
            r.cancel.cancel();
        }
        log::warn!(
            "in-flight jobs did not finish within the grace period; their leases will lapse and they will be retried"
        );
    }
    heartbeat_stop.cancel();
    cancels.abort();
    let _ = heartbeat.await;
    let _ = lag_reporter.await;
    let _ = kinds.await;
    match shared.consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {}
        // Nothing stored since the last auto-commit: there is nothing to commit.
        Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => log::warn!("final offset commit failed (messages will be redelivered, harmlessly): {e}"),
    }
    if fatal.is_none() {
        leave_group(&shared, &held).await;
    }
    log::info!("worker stopped");
    fatal.map_or(Ok(()), Err)
}
