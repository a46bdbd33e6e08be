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

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ackbox_shared::db::{DbError, PgPool};
use ackbox_shared::envelope::Envelope;
use ackbox_shared::models::JobError;
use ackbox_shared::state::{self, ClaimedJob, FailOutcome, Success};
use diesel::Connection;
use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::config::WorkerConfig;
use crate::handler::{HandlerError, JobContext, Registry};
use crate::offsets::OffsetTracker;

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The consumer could not be created or subscribed.
    #[error("kafka consumer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
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
    _permit: OwnedSemaphorePermit,
}

/// State shared by the loop, the job tasks and the completer.
struct Shared {
    config: WorkerConfig,
    pool: PgPool,
    registry: Registry,
    consumer: StreamConsumer,
    tracker: Mutex<OffsetTracker>,
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
pub fn build_consumer(config: &WorkerConfig) -> Result<StreamConsumer, WorkerError> {
    let consumer: StreamConsumer = config
        .kafka
        .client_config()
        .set("group.id", &config.group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", config.fetch_wait.as_millis().to_string())
        .create()?;
    consumer.subscribe(&[&config.kafka.topic])?;
    Ok(consumer)
}

/// Runs until `shutdown` turns true, then stops taking messages, lets in-flight jobs finish (bounded by the job
/// timeout), writes their outcomes, and commits the stored offsets synchronously.
pub async fn run(
    config: WorkerConfig,
    pool: PgPool,
    registry: Registry,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), WorkerError> {
    let consumer = build_consumer(&config)?;
    let concurrency = config.concurrency;
    let shared = Arc::new(Shared { config, pool, registry, consumer, tracker: Mutex::new(OffsetTracker::new()) });
    let semaphore = Arc::new(Semaphore::new(concurrency));
    let (done_tx, done_rx) = mpsc::unbounded_channel::<Outcome>();
    let completer = tokio::spawn(complete_loop(shared.clone(), done_rx));

    log::info!(
        "worker consuming {} as group {} (concurrency {})",
        shared.config.kafka.topic,
        shared.config.group,
        concurrency
    );
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
                    log::warn!("kafka consumer error: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            if batch.len() < shared.config.batch {
                next = shared.consumer.recv().now_or_never();
            }
        }
        if batch.is_empty() {
            continue;
        }
        // Reserve the in-flight slots before claiming, so a claimed job always has a slot to run in.
        let Ok(mut permits) = semaphore.clone().acquire_many_owned(batch.len() as u32).await else { break };
        dispatch(&shared, batch, &mut permits, &done_tx).await;
    }

    log::info!("worker stopping: waiting for in-flight jobs");
    drop(done_tx);
    let drain = tokio::time::timeout(shared.config.job_timeout + Duration::from_secs(5), completer).await;
    if drain.is_err() {
        log::warn!("in-flight jobs did not finish in time; their leases will lapse and the rescuer will retry them");
    }
    match shared.consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {}
        // Nothing stored since the last auto-commit: there is nothing to commit.
        Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => log::warn!("final offset commit failed (messages will be redelivered, harmlessly): {e}"),
    }
    log::info!("worker stopped");
    Ok(())
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
    let ctx = JobContext {
        job_id: job.id,
        kind: job.kind.clone(),
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        deadline: Instant::now() + timeout,
    };
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
    // The completer only goes away after every sender is dropped, so this cannot fail while we hold one.
    let _ = done_tx.send(Outcome { job, partition, offset, result, _permit: permit });
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
        shared.finish(batch.iter().map(|o| (o.partition, o.offset)));
    }
}

/// One transaction: all successes in one UPDATE, then each failure (retry with a new outbox row, or final).
fn write_outcomes(shared: &Shared, batch: &[Outcome]) -> Result<(), DbError> {
    let successes: Vec<Success> = batch
        .iter()
        .filter_map(|o| {
            o.result.as_ref().ok().map(|r| Success { id: o.job.id, attempt: o.job.attempt, result: r.clone() })
        })
        .collect();
    let mut conn = shared.pool.get()?;
    let (applied, failures) = conn.transaction(|conn| {
        let applied = state::complete(conn, &successes)?;
        let mut failures = Vec::new();
        for o in batch {
            if let Err(err) = &o.result {
                let job_error = JobError { code: err.code.clone(), message: err.message.clone() };
                let backoff = shared.config.retry_backoff(o.job.attempt);
                let outcome = state::fail(
                    conn,
                    o.job.id,
                    o.job.attempt,
                    &job_error,
                    err.retryable,
                    backoff,
                    &shared.config.kafka.topic,
                )?;
                failures.push((o.job.id, o.job.attempt, err.code.clone(), outcome));
            }
        }
        Ok::<_, diesel::result::Error>((applied, failures))
    })?;
    if applied.len() < successes.len() {
        log::info!(
            "{} successes were stale (a newer attempt or status won) and were not recorded",
            successes.len() - applied.len()
        );
    }
    for (id, attempt, code, outcome) in failures {
        match outcome {
            FailOutcome::Retried { not_before } => {
                log::info!("job {id} attempt {attempt} failed ({code}); retry scheduled at {not_before}")
            }
            FailOutcome::Failed => log::warn!("job {id} failed for good on attempt {attempt} ({code})"),
            FailOutcome::Stale => log::info!("job {id} attempt {attempt} failure was stale; not recorded"),
        }
    }
    Ok(())
}
