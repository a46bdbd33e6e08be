//! The completer: finished attempts are written in batches, one transaction per batch (fenced successes, effects,
//! failures with their retries), and only then are their offsets stored.

use std::sync::Arc;
use std::time::Duration;

use ackbox_db::db::DbError;
use ackbox_db::models::JobError;
use ackbox_db::state::{self, FailOutcome, Success};
use ackbox_runtime::retry::{blocking, retry_forever, Backoff};
use diesel::Connection;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::handler::HandlerError;
use crate::shared::{Outcome, Shared};

/// Writes outcomes in batches: whatever finished while the previous write ran goes into the next transaction.
pub(crate) async fn complete_loop(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Outcome>) {
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
        // Retrying is safe: every write is fenced by status and attempt, so a retry of an applied write is a no-op.
        let what = format!("recording {} outcomes", batch.len());
        retry_forever(&what, Backoff::new(Duration::from_millis(50), Duration::from_secs(5)), || {
            let (s, b) = (shared.clone(), batch.clone());
            blocking(move || write_outcomes(&s, &b))
        })
        .await;
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
    // One entry per outcome, in batch order.
    for (o, r) in batch.iter().zip(recorded) {
        if let Recorded::Stale = r {
            log::info!(
                "job {} attempt {}: its success was stale (the job moved on); not recorded",
                o.job.id,
                o.job.attempt
            );
        }
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
