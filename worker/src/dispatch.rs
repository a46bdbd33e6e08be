//! From a batch of messages to running attempts: one claim UPDATE for the batch, then a task per claimed job, each
//! bounded by its timeout and caught if it panics.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ackbox_db::db::DbError;
use ackbox_db::state::{self, ClaimedJob};
use ackbox_runtime::retry::{blocking, retry_forever, Backoff};
use ackbox_runtime::telemetry::{self, SpanMethods as _};
use ackbox_types::envelope::Envelope;
use ackbox_types::trace::TraceContext;
use futures::FutureExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::consumer::Delivered;
use crate::handler::{HandlerError, JobContext};
use crate::queues::{AtCap, Parked, QueueSlot};
use crate::shared::{Outcome, Position, Running, Shared};

/// Claims the batch's jobs with one conditional UPDATE and spawns a task per claimed job. Messages that claimed
/// nothing (duplicates, jobs already running or terminal, undecodable) are done at once; a message of a queue at its
/// cap waits (`queues.rs`).
pub(crate) async fn dispatch(
    shared: &Arc<Shared>,
    batch: Vec<Delivered>,
    permits: &mut OwnedSemaphorePermit,
    done_tx: &mpsc::UnboundedSender<Outcome>,
) {
    // Each message was begun (offset tracking) when it was received (`consumer.rs`). One slot per message (`permits` holds exactly one per message).
    let batch = batch.into_iter().map(|d| Routed { permit: permits.split(1), delivered: d, slot: None }).collect();
    route(shared, batch, done_tx).await;
}

/// A received message on its way to a claim: its in-flight slot, and its queue place once it has one.
pub(crate) struct Routed {
    pub(crate) delivered: Delivered,
    pub(crate) permit: Option<OwnedSemaphorePermit>,
    pub(crate) slot: Option<QueueSlot>,
}

/// Takes the parked messages whose queue has room again through the claim, whenever a place frees up, until `stop`.
pub(crate) async fn unpark_loop(shared: Arc<Shared>, done_tx: mpsc::UnboundedSender<Outcome>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = shared.queues.wake.notified() => {}
            _ = stop.cancelled() => return,
        }
        let ready: Vec<Routed> = shared
            .queues
            .unpark()
            .into_iter()
            .map(|(p, slot)| Routed { delivered: p.delivered, permit: Some(p.permit), slot: Some(slot) })
            .collect();
        if !ready.is_empty() {
            route(&shared, ready, &done_tx).await;
        }
    }
}

/// Parks what its queue's cap holds back, claims the rest with one UPDATE, and spawns a task per claimed job.
async fn route(shared: &Arc<Shared>, batch: Vec<Routed>, done_tx: &mpsc::UnboundedSender<Outcome>) {
    // A message of a queue at its cap waits, unclaimed, with its slot.
    let mut batch: Vec<Routed> = batch
        .into_iter()
        .filter_map(|mut r| {
            let Some(env) = r.delivered.envelope.as_ref() else { return Some(r) };
            if r.slot.is_some() || shared.registry.get(&env.kind).is_none() {
                return Some(r);
            }
            match shared.queues.try_take(env.queue()) {
                Ok(slot) => {
                    r.slot = slot;
                    Some(r)
                }
                Err(AtCap) => match r.permit.take() {
                    Some(permit) => {
                        shared.metrics.parked.inc();
                        shared.queues.park(Parked { delivered: r.delivered, permit });
                        None
                    }
                    None => Some(r),
                },
            }
        })
        .collect();
    // A job of a kind this worker has no handler for is not claimed: it stays queued for a worker that has one.
    let (known, unknown): (Vec<&Envelope>, Vec<&Envelope>) = batch
        .iter()
        .filter_map(|r| r.delivered.envelope.as_ref())
        .partition(|env| shared.registry.get(&env.kind).is_some());
    if !unknown.is_empty() {
        shared.metrics.skipped_kinds.inc_by(unknown.len() as u64);
        let kinds: std::collections::BTreeSet<&str> = unknown.iter().map(|env| env.kind.as_str()).collect();
        log::warn!(
            "{} dispatches of kinds this worker has no handler for ({}): left queued for a worker that runs them",
            unknown.len(),
            kinds.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let ids: Vec<Uuid> = known.iter().map(|env| env.job_id).collect();
    let skipped_ids: Vec<Uuid> = unknown.iter().map(|env| env.job_id).collect();
    let mut claimed = claim_until_done(shared, ids, skipped_ids).await;
    shared.metrics.attempts.inc_by(claimed.len() as u64);
    let mut skipped = Vec::new();
    for r in batch.drain(..) {
        let Routed { delivered: d, permit, slot } = r;
        let job = d.envelope.as_ref().and_then(|env| claimed.remove(&env.job_id));
        match (job, permit) {
            (Some(job), Some(permit)) => {
                let at = Delivery { at: d.at, trace: d.trace };
                tokio::spawn(run_job(shared.clone(), job, at, (permit, slot), done_tx.clone()));
            }
            (job, _) => {
                // Without a slot (cannot happen: one per message) a claimed job is never run; its lease lapses and
                // the rescuer takes it back.
                if let (None, Some(env)) = (&job, &d.envelope) {
                    shared.metrics.duplicates.inc();
                    log::debug!(
                        job_id:% = env.job_id, attempt = env.attempt;
                        "job {} attempt {}: nothing to claim (duplicate, finished, or its queue paused)",
                        env.job_id, env.attempt
                    );
                }
                skipped.push(d.at);
            }
        }
    }
    shared.finish(skipped);
}

/// The claim must not be lost to a passing database outage: retry with backoff until it goes through. Until then
/// no offset moves, so nothing is skipped. The jobs of kinds this worker lacks are marked in the same transaction.
async fn claim_until_done(
    shared: &Arc<Shared>,
    ids: Vec<Uuid>,
    skipped: Vec<Uuid>,
) -> std::collections::HashMap<Uuid, ClaimedJob> {
    if ids.is_empty() && skipped.is_empty() {
        return Default::default();
    }
    let what = format!("claiming {} jobs", ids.len());
    let jobs = retry_forever(&what, Backoff::new(Duration::from_millis(50), Duration::from_secs(5)), || {
        let (s, batch_ids, skipped) = (shared.clone(), ids.clone(), skipped.clone());
        blocking(move || -> Result<Vec<ClaimedJob>, DbError> {
            let mut conn = s.pool.get()?;
            // The claim alone is one statement, atomic by itself: no BEGIN and COMMIT round trips around it.
            if skipped.is_empty() {
                return Ok(state::claim_kinds(&mut conn, &batch_ids, s.config.lease, Some(&s.kinds))?);
            }
            Ok(diesel::Connection::transaction(&mut conn, |c| {
                state::mark_skipped(c, &skipped)?;
                state::claim_kinds(c, &batch_ids, s.config.lease, Some(&s.kinds))
            })?)
        })
    })
    .await;
    jobs.into_iter().map(|j| (j.id, j)).collect()
}

/// Where a claimed job's message came from: its offset, and the trace context its headers carried.
struct Delivery {
    at: Position,
    trace: Option<TraceContext>,
}

/// The attempt's span, a child of the submit span the record carried (a new trace without one), and its context for
/// the handler.
fn attempt_span(job: &ClaimedJob, at: &Delivery) -> (telemetry::Span, TraceContext) {
    let attributes = vec![
        telemetry::KeyValue::new("messaging.system", "kafka"),
        telemetry::KeyValue::new("messaging.operation.type", "process"),
        telemetry::KeyValue::new("messaging.kafka.offset", at.at.offset),
        telemetry::KeyValue::new("messaging.destination.partition.id", at.at.partition.to_string()),
        telemetry::KeyValue::new("ackbox.job_id", job.id.to_string()),
        telemetry::KeyValue::new("ackbox.kind", job.kind.clone()),
        telemetry::KeyValue::new("ackbox.attempt", i64::from(job.attempt)),
    ];
    telemetry::start_span(format!("process {}", job.kind), telemetry::SpanKind::Consumer, at.trace.as_ref(), attributes)
}

/// Runs one attempt. A panic or a timeout in the handler is a failed attempt, never a dead worker.
async fn run_job(
    shared: Arc<Shared>,
    job: ClaimedJob,
    at: Delivery,
    (permit, queue_slot): (OwnedSemaphorePermit, Option<QueueSlot>),
    done_tx: mpsc::UnboundedSender<Outcome>,
) {
    let (mut span, trace) = attempt_span(&job, &at);
    let Delivery { at, .. } = at;
    // The job's own timeout (POST /v1/jobs timeout_ms, capped by the api), else this worker's default.
    let timeout =
        job.timeout_ms.map_or(shared.config.job_timeout, |ms| Duration::from_millis(ms.unsigned_abs().into()));
    let cancel = CancellationToken::new();
    shared.running().insert((job.id, job.attempt), Running { cancel: cancel.clone(), finishing: false });
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
    )
    .with_trace(trace);
    let started = Instant::now();
    let result = match shared.registry.get(&job.kind) {
        // Cannot happen (the claim names this worker's kinds), but never fail a job for it: another worker can run it.
        None => {
            Err(HandlerError::retryable("unknown_kind", format!("no handler is registered for kind {:?}", job.kind)))
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
    if let Some(r) = shared.running().get_mut(&(job.id, job.attempt)) {
        r.finishing = true;
    }
    if let Err(e) = &result {
        span.set_status(telemetry::Status::error(format!("{}: {}", e.code, e.message)));
    }
    // The completer only goes away after every sender is dropped, so this cannot fail while we hold one.
    let _ = done_tx.send(Outcome { job, at, result, effects, _permit: permit, _queue_slot: queue_slot, _span: span });
}
