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

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ackbox_shared::db::{DbError, PgPool};
use ackbox_shared::envelope::Envelope;
use ackbox_shared::models::JobError;
use ackbox_shared::state::{self, ClaimedJob, FailOutcome, Success};
use diesel::Connection;
use futures::FutureExt;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::WorkerConfig;
use crate::handler::{Effect, HandlerError, JobContext, Registry};
use crate::metrics::WorkerMetrics;
use crate::offsets::OffsetTracker;

/// The latest per-partition lag `(topic, partition, lag)` from librdkafka's statistics, until the reporter takes it.
type LatestLag = Arc<Mutex<Option<Vec<(String, i32, i64)>>>>;

/// librdkafka callbacks: consumer lag from statistics, and a synchronous commit before partitions are revoked.
pub struct WorkerContext {
    metrics: WorkerMetrics,
    /// Partitions held now (a leaving static member waits for its revocation).
    held: Arc<AtomicUsize>,
    /// The latest per-partition lag `(topic, partition, lag)`, taken by the lag reporter.
    lag: LatestLag,
}

impl ClientContext for WorkerContext {
    fn stats(&self, statistics: Statistics) {
        let mut seen = Vec::new();
        for (name, topic) in &statistics.topics {
            for (partition, p) in &topic.partitions {
                // librdkafka reports the internal UA partition as -1 and unknown lag as -1.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.metrics.consumer_lag.with_label_values(&[&partition.to_string()]).set(p.consumer_lag);
                    seen.push((name.clone(), *partition, p.consumer_lag));
                }
            }
        }
        // This runs on librdkafka's thread: hand the numbers over and let the reporter write them.
        *self.lag.lock().unwrap_or_else(|p| p.into_inner()) = Some(seen);
    }
}

impl ConsumerContext for WorkerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            // Hand over with everything stored so far committed, so the next owner redelivers as little as possible.
            // Jobs still running for these partitions finish and record their status normally (or their leases lapse
            // and the rescuer retries them); their late offsets are simply not stored.
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(())
                | Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => log::warn!("commit before revoking {} partitions failed: {e}", partitions.count()),
            }
            log::info!("partitions revoked: {}", partitions.count());
            self.held.store(0, Ordering::SeqCst);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            log::info!("partitions assigned: {}", partitions.count());
            self.held.store(partitions.count(), Ordering::SeqCst);
        }
    }
}

type Kafka = StreamConsumer<WorkerContext>;

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
struct Delivered {
    partition: i32,
    offset: i64,
    envelope: Option<Envelope>,
}

/// A finished attempt on its way to the completer. The permit travels with it, so the in-flight bound covers jobs
/// whose status is not yet written.
struct Outcome {
    job: ClaimedJob,
    partition: i32,
    offset: i64,
    result: Result<serde_json::Value, HandlerError>,
    effects: Vec<Effect>,
    /// A cancel was requested for this attempt (seen by the heartbeat); a failure then ends the job `cancelled`.
    cancel_requested: bool,
    _permit: OwnedSemaphorePermit,
}

/// An attempt this process runs.
struct Running {
    attempt: i32,
    cancel: CancellationToken,
    cancel_requested: Arc<std::sync::atomic::AtomicBool>,
}

/// State shared by the loop, the job tasks, the heartbeat and the completer.
struct Shared {
    config: WorkerConfig,
    pool: PgPool,
    registry: Registry,
    consumer: Kafka,
    metrics: WorkerMetrics,
    tracker: Mutex<OffsetTracker>,
    /// Attempts this process runs. The heartbeat extends their leases and relays cancel requests to them.
    running: Mutex<HashMap<Uuid, Running>>,
}

impl Shared {
    /// Marks messages done and stores whatever offsets that made storable, in one call.
    fn finish(&self, done: impl IntoIterator<Item = (i32, i64)>) {
        let mut tpl = TopicPartitionList::new();
        {
            let mut tracker = self.tracker.lock().unwrap_or_else(|p| p.into_inner());
            for (partition, offset) in done {
                if let Some(next) = tracker.finish(partition, offset) {
                    // A later finish of the same partition overwrites the earlier entry with a higher offset.
                    let _ = tpl.add_partition_offset(&self.config.kafka.topic, partition, Offset::Offset(next));
                }
            }
        }
        if tpl.count() > 0 {
            // Fails only for partitions no longer assigned to us; their new owner redelivers, which fencing absorbs.
            if let Err(e) = self.consumer.store_offsets(&tpl) {
                log::debug!("storing offsets skipped: {e}");
            }
        }
    }
}

/// Builds the consumer: a group member with manual offset *store* and automatic *commit* of stored offsets.
fn build_consumer(
    config: &WorkerConfig,
    metrics: &WorkerMetrics,
    lag: LatestLag,
    held: Arc<AtomicUsize>,
) -> Result<Kafka, WorkerError> {
    let mut client = config.kafka.client_config();
    if let Some(instance) = &config.instance_id {
        // Static membership: a restart under the same name takes the partitions back without a rebalance, instead
        // of leaving them unconsumed until the session of the killed process runs out.
        client.set("group.instance.id", instance);
    }
    let consumer: Kafka = client
        .set("group.id", &config.group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", config.fetch_wait.as_millis().to_string())
        .set("session.timeout.ms", config.session_timeout.as_millis().to_string())
        .set("statistics.interval.ms", config.stats_interval.as_millis().to_string())
        .create_with_context(WorkerContext { metrics: metrics.clone(), lag, held })?;
    consumer.subscribe(&[&config.kafka.topic])?;
    Ok(consumer)
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
        registry,
        consumer,
        metrics,
        tracker: Mutex::new(OffsetTracker::new()),
        running: Mutex::new(HashMap::new()),
    });
    let semaphore = Arc::new(Semaphore::new(concurrency));
    let (done_tx, done_rx) = mpsc::unbounded_channel::<Outcome>();
    let completer = tokio::spawn(complete_loop(shared.clone(), done_rx));
    let heartbeat_stop = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat_loop(shared.clone(), heartbeat_stop.clone()));
    let lag_reporter = tokio::spawn(lag_report_loop(shared.clone(), lag, heartbeat_stop.clone()));

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
    while !*shutdown.borrow() {
        let first = tokio::select! {
            m = shared.consumer.recv() => m,
            _ = shutdown.changed() => break,
        };
        let mut batch = Vec::with_capacity(shared.config.batch);
        let mut next = Some(first);
        // Take what is already buffered, without waiting: one claim UPDATE for all of it.
        while let Some(m) = next.take() {
            match m {
                Ok(m) => batch.push(Delivered {
                    partition: m.partition(),
                    offset: m.offset(),
                    envelope: match Envelope::decode(m.payload()) {
                        Ok(env) => Some(env),
                        Err(e) => {
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
                        fatal = Some(WorkerError::Fatal { code, reason });
                        break;
                    }
                    log::warn!("kafka consumer error: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            if batch.len() < shared.config.batch {
                next = shared.consumer.recv().now_or_never();
            }
        }
        if batch.is_empty() {
            if fatal.is_some() {
                break;
            }
            continue;
        }
        // Reserve the in-flight slots before claiming, so a claimed job always has a slot to run in.
        let Ok(mut permits) = semaphore.clone().acquire_many_owned(batch.len() as u32).await else { break };
        dispatch(&shared, batch, &mut permits, &done_tx).await;
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
        for r in shared.running.lock().unwrap_or_else(|p| p.into_inner()).values() {
            r.cancel.cancel();
        }
        log::warn!(
            "in-flight jobs did not finish within the grace period; their leases will lapse and they will be retried"
        );
    }
    heartbeat_stop.cancel();
    let _ = heartbeat.await;
    let _ = lag_reporter.await;
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

/// A static member does not leave its group when its consumer closes (KIP-345: the group waits for it to come back
/// until its session times out). A worker that stops on purpose is not coming back soon, so it leaves explicitly:
/// an unsubscribe sends LeaveGroup, and the group hands its partitions on at once. Waits (briefly) for the
/// revocation that confirms it; a dynamic member leaves on close anyway.
async fn leave_group(shared: &Shared, held: &AtomicUsize) {
    if shared.config.instance_id.is_none() {
        return;
    }
    shared.consumer.unsubscribe();
    let deadline = Instant::now() + Duration::from_secs(5);
    // Rebalance callbacks run inside recv(); messages still buffered are dropped unstored (redelivered, harmlessly).
    while held.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        let _ = tokio::time::timeout(Duration::from_millis(100), shared.consumer.recv()).await;
    }
    log::info!("left group {} (static member {:?})", shared.config.group, shared.config.instance_id);
}

/// Claims the batch's jobs with one conditional UPDATE and spawns a task per claimed job. Messages that claimed
/// nothing (duplicates, jobs already running or terminal, undecodable) are done at once.
async fn dispatch(
    shared: &Arc<Shared>,
    batch: Vec<Delivered>,
    permits: &mut OwnedSemaphorePermit,
    done_tx: &mpsc::UnboundedSender<Outcome>,
) {
    {
        let mut tracker = shared.tracker.lock().unwrap_or_else(|p| p.into_inner());
        for d in &batch {
            tracker.begin(d.partition, d.offset);
        }
    }
    let ids: Vec<Uuid> = batch.iter().filter_map(|d| d.envelope.as_ref().map(|e| e.job_id)).collect();
    let mut claimed = claim_until_done(shared, ids).await;
    shared.metrics.attempts.inc_by(claimed.len() as u64);
    let mut skipped = Vec::new();
    for d in batch {
        let job = d.envelope.as_ref().and_then(|env| claimed.remove(&env.job_id));
        match job {
            Some(job) => {
                let Some(permit) = permits.split(1) else {
                    // Cannot happen (one permit per message), but never run a job without a slot.
                    skipped.push((d.partition, d.offset));
                    continue;
                };
                tokio::spawn(run_job(shared.clone(), job, d.partition, d.offset, permit, done_tx.clone()));
            }
            None => {
                if let Some(env) = &d.envelope {
                    shared.metrics.duplicates.inc();
                    log::debug!("job {} attempt {}: nothing to claim (duplicate or finished)", env.job_id, env.attempt);
                }
                skipped.push((d.partition, d.offset));
            }
        }
    }
    shared.finish(skipped);
}

/// The claim must not be lost to a passing database outage: retry with backoff until it goes through. Until then
/// no offset moves, so nothing is skipped.
async fn claim_until_done(shared: &Arc<Shared>, ids: Vec<Uuid>) -> std::collections::HashMap<Uuid, ClaimedJob> {
    if ids.is_empty() {
        return Default::default();
    }
    let mut backoff = Duration::from_millis(50);
    loop {
        let s = shared.clone();
        let batch_ids = ids.clone();
        let res = tokio::task::spawn_blocking(move || -> Result<Vec<ClaimedJob>, DbError> {
            let mut conn = s.pool.get()?;
            Ok(state::claim(&mut conn, &batch_ids, s.config.lease)?)
        })
        .await;
        match res {
            Ok(Ok(jobs)) => return jobs.into_iter().map(|j| (j.id, j)).collect(),
            Ok(Err(e)) => log::error!("claiming {} jobs failed, retrying in {backoff:?}: {e}", ids.len()),
            Err(e) => log::error!("claim task failed, retrying in {backoff:?}: {e}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Runs one attempt. A panic or a timeout in the handler is a failed attempt, never a dead worker.
async fn run_job(
    shared: Arc<Shared>,
    job: ClaimedJob,
    partition: i32,
    offset: i64,
    permit: OwnedSemaphorePermit,
    done_tx: mpsc::UnboundedSender<Outcome>,
) {
    let timeout = shared.config.job_timeout;
    let cancel = CancellationToken::new();
    let cancel_requested = Arc::new(std::sync::atomic::AtomicBool::new(false));
    shared.running.lock().unwrap_or_else(|p| p.into_inner()).insert(
        job.id,
        Running { attempt: job.attempt, cancel: cancel.clone(), cancel_requested: cancel_requested.clone() },
    );
    shared.metrics.in_flight.inc();
    let to_start = (job.started_at - job.created_at).to_std().unwrap_or_default();
    shared.metrics.time_to_start.observe(to_start.as_secs_f64());
    let ctx = JobContext::with_runtime(
        job.id,
        job.kind.clone(),
        job.attempt,
        job.max_attempts,
        Instant::now() + timeout,
        cancel,
        Some(shared.pool.clone()),
    );
    let started = Instant::now();
    let result = match shared.registry.get(&job.kind) {
        None => {
            Err(HandlerError::permanent("unknown_kind", format!("no handler is registered for kind {:?}", job.kind)))
        }
        Some(handler) => {
            let run = AssertUnwindSafe(handler.run(&ctx, job.payload.clone())).catch_unwind();
            match tokio::time::timeout(timeout, run).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(HandlerError::retryable("panicked", "the handler panicked")),
                Err(_) => Err(HandlerError::retryable("timeout", format!("the handler ran longer than {timeout:?}"))),
            }
        }
    };
    shared.metrics.job_duration.with_label_values(&[&job.kind]).observe(started.elapsed().as_secs_f64());
    // Effects only ride along with a success.
    let effects = if result.is_ok() { ctx.take_effects() } else { Vec::new() };
    // The completer only goes away after every sender is dropped, so this cannot fail while we hold one.
    let cancel_requested = cancel_requested.load(std::sync::atomic::Ordering::SeqCst);
    let _ = done_tx.send(Outcome { job, partition, offset, result, effects, cancel_requested, _permit: permit });
}

/// Extends the leases of every attempt this process runs, in one statement, every `ACKBOX_HEARTBEAT_MS` (at most a
/// third of the lease). An attempt whose lease is gone (the rescuer took the job back after a stall) is cancelled:
/// another attempt may be running, and this one's writes would be refused anyway. An attempt whose job got a cancel
/// request is cancelled too, and marked so its failure ends the job `cancelled`.
/// Writes the latest consumer lag to `consumer_lag` once per statistics interval (one upsert), for the dashboard and
/// the CLI. Losing a report is harmless: the next one replaces it.
async fn lag_report_loop(shared: Arc<Shared>, lag: LatestLag, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(shared.config.stats_interval) => {}
            _ = stop.cancelled() => return,
        }
        let Some(rows) = lag.lock().unwrap_or_else(|p| p.into_inner()).take() else { continue };
        let s = shared.clone();
        let res = tokio::task::spawn_blocking(move || -> Result<usize, DbError> {
            let mut conn = s.pool.get()?;
            Ok(ackbox_shared::models::consumer_lag::report(&mut conn, &s.config.group, &rows)?)
        })
        .await;
        if let Ok(Err(e)) = res {
            log::warn!("reporting consumer lag failed (next report replaces it): {e}");
        }
    }
}

async fn heartbeat_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let every = shared.config.heartbeat.min(shared.config.lease / 3).max(Duration::from_millis(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        let held: Vec<(Uuid, i32)> =
            shared.running.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(id, r)| (*id, r.attempt)).collect();
        if held.is_empty() {
            continue;
        }
        let s = shared.clone();
        let h = held.clone();
        let res = tokio::task::spawn_blocking(move || -> Result<Vec<(Uuid, bool)>, DbError> {
            let mut conn = s.pool.get()?;
            Ok(state::heartbeat(&mut conn, &h, s.config.lease)?)
        })
        .await;
        match res {
            Ok(Ok(extended)) => {
                let extended: HashMap<Uuid, bool> = extended.into_iter().collect();
                let running = shared.running.lock().unwrap_or_else(|p| p.into_inner());
                for (id, attempt) in held {
                    // Gone from `running` meanwhile means it finished normally.
                    let Some(r) = running.get(&id).filter(|r| r.attempt == attempt && !r.cancel.is_cancelled()) else {
                        continue;
                    };
                    match extended.get(&id) {
                        Some(false) => {}
                        Some(true) => {
                            log::info!("job {id} attempt {attempt}: cancel requested; stopping it");
                            r.cancel_requested.store(true, std::sync::atomic::Ordering::SeqCst);
                            r.cancel.cancel();
                        }
                        None => {
                            shared.metrics.leases_lost.inc();
                            log::warn!("job {id} attempt {attempt} lost its lease; cancelling it");
                            r.cancel.cancel();
                        }
                    }
                }
            }
            Ok(Err(e)) => log::warn!("heartbeat for {} attempts failed (retrying next beat): {e}", held.len()),
            Err(e) => log::warn!("heartbeat task failed: {e}"),
        }
    }
}

/// Writes outcomes in batches: whatever finished while the previous write ran goes into the next transaction.
async fn complete_loop(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Outcome>) {
    const MAX_BATCH: usize = 1024;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(o) => batch.push(o),
                Err(_) => break,
            }
        }
        let batch = Arc::new(batch);
        let mut backoff = Duration::from_millis(50);
        loop {
            let s = shared.clone();
            let b = batch.clone();
            match tokio::task::spawn_blocking(move || write_outcomes(&s, &b)).await {
                Ok(Ok(())) => break,
                Ok(Err(e)) => log::error!("recording {} outcomes failed, retrying in {backoff:?}: {e}", batch.len()),
                Err(e) => log::error!("outcome task failed, retrying in {backoff:?}: {e}"),
            }
            // Retrying is safe: every write is fenced by status and attempt, so a retry of an applied write is a no-op.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        {
            let mut running = shared.running.lock().unwrap_or_else(|p| p.into_inner());
            for o in batch.iter() {
                if running.get(&o.job.id).is_some_and(|r| r.attempt == o.job.attempt) {
                    running.remove(&o.job.id);
                }
            }
        }
        shared.metrics.in_flight.sub(batch.len() as i64);
        shared.finish(batch.iter().map(|o| (o.partition, o.offset)));
    }
}

/// What happened to one outcome.
enum Recorded {
    Succeeded,
    Stale,
    Cancelled,
    Failed(FailOutcome),
}

/// One transaction: all plain successes in one UPDATE; successes with effects each in a savepoint (the fenced status
/// write, then the effects, all or nothing: an effect that fails turns the success into a failed attempt); then each
/// failure (retry with a new outbox row, or final).
fn write_outcomes(shared: &Shared, batch: &[Outcome]) -> Result<(), DbError> {
    let plain: Vec<Success> = batch
        .iter()
        .filter(|o| o.effects.is_empty())
        .filter_map(|o| {
            o.result.as_ref().ok().map(|r| Success { id: o.job.id, attempt: o.job.attempt, result: r.clone() })
        })
        .collect();
    let topic = &shared.config.kafka.topic;
    let mut conn = shared.pool.get()?;
    let recorded = conn.transaction(|conn| {
        let applied: std::collections::HashSet<Uuid> = state::complete(conn, &plain)?.into_iter().collect();
        let mut recorded = Vec::with_capacity(batch.len());
        for o in batch {
            let (id, attempt) = (o.job.id, o.job.attempt);
            let failure = match &o.result {
                Ok(_) if o.effects.is_empty() => {
                    recorded.push(if applied.contains(&id) { Recorded::Succeeded } else { Recorded::Stale });
                    continue;
                }
                Ok(result) => {
                    let with_effects = conn.transaction(|conn| {
                        let done = state::complete(conn, &[Success { id, attempt, result: result.clone() }])?;
                        if done.is_empty() {
                            return Ok(false);
                        }
                        for effect in &o.effects {
                            effect(conn)?;
                        }
                        Ok::<_, diesel::result::Error>(true)
                    });
                    match with_effects {
                        Ok(true) => {
                            recorded.push(Recorded::Succeeded);
                            continue;
                        }
                        Ok(false) => {
                            recorded.push(Recorded::Stale);
                            continue;
                        }
                        // The savepoint rolled back status and effects together; record a failed attempt instead.
                        Err(e) => {
                            log::warn!("job {id} attempt {attempt}: its effects failed to commit: {e}");
                            HandlerError::retryable(
                                "effect_failed",
                                "the job's database effects could not be committed",
                            )
                        }
                    }
                }
                Err(_) if o.cancel_requested && state::cancel_running(conn, id, attempt)? => {
                    log::info!("job {id} attempt {attempt} cancelled on request");
                    recorded.push(Recorded::Cancelled);
                    continue;
                }
                Err(err) => err.clone(),
            };
            let job_error = JobError { code: failure.code.clone(), message: failure.message.clone() };
            let backoff = shared.config.retry_backoff(attempt);
            let outcome = state::fail(conn, id, attempt, &job_error, failure.retryable, backoff, topic)?;
            shared.metrics.failures.with_label_values(&[&failure.code]).inc();
            recorded.push(Recorded::Failed(outcome));
            match outcome {
                FailOutcome::Retried { not_before } => {
                    log::info!("job {id} attempt {attempt} failed ({}); retry scheduled at {not_before}", failure.code)
                }
                FailOutcome::Failed => log::warn!("job {id} failed for good on attempt {attempt} ({})", failure.code),
                FailOutcome::Stale => log::info!("job {id} attempt {attempt} failure was stale; not recorded"),
            }
        }
        Ok::<_, diesel::result::Error>(recorded)
    })?;
    for r in recorded {
        let label = match r {
            Recorded::Succeeded => "succeeded",
            Recorded::Cancelled => "cancelled",
            Recorded::Stale | Recorded::Failed(FailOutcome::Stale) => "stale",
            Recorded::Failed(FailOutcome::Retried { .. }) => "retried",
            Recorded::Failed(FailOutcome::Failed) => "failed",
        };
        shared.metrics.outcomes.with_label_values(&[label]).inc();
    }
    Ok(())
}
