//! The completer: finished attempts are written in batches, one transaction per batch (fenced successes, effects,
//! failures with their retries), and only then are their offsets stored. A batch of nothing but plain successes is
//! one UPDATE, atomic by itself, sent without a transaction around it.
//!
//! One bad outcome never wedges the worker:
//! - results and errors Postgres would refuse are caught before writing (`outcome.rs`) and fail their own job with
//!   `result_unstorable`;
//! - every outcome that could still be refused is written in its own savepoint (plain successes first together in
//!   one, then, only if that one is refused, each alone), so a refused row fails only its own job;
//! - an outcome Postgres refuses even as a failure, or a whole batch it refuses `ACKBOX_OUTCOME_WRITE_TRIES` times
//!   (query errors, not outages: an outage is waited out), is *released*: its attempt leaves the running set, its
//!   lease lapses and the rescuer takes the job back from the database.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use ackbox_db::db::{is_outage, DbError};
use ackbox_db::models::{JobError, JobStatus};
use ackbox_db::state::{self, FailOutcome, Success};
use ackbox_runtime::retry::Backoff;
use diesel::{Connection, PgConnection};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::handler::HandlerError;
use crate::outcome::{check_error, check_result, UNSTORABLE};
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
        let recorded = write_until_done(&shared, &batch).await;
        {
            let mut running = shared.running();
            for o in batch.iter() {
                running.remove(&(o.job.id, o.job.attempt));
            }
        }
        count(&shared, &batch, &recorded);
        shared.metrics.in_flight.sub(batch.len() as i64);
        shared.finish(batch.iter().map(|o| o.at));
    }
}

/// Retries the batch's transaction: for as long as Postgres is unreachable (every write is fenced by status and
/// attempt, so a retry of an applied write is a no-op), but only `outcome_write_tries` times while it answers with
/// an error. Then the batch is released.
async fn write_until_done(shared: &Arc<Shared>, batch: &Arc<Vec<Outcome>>) -> Vec<Recorded> {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
    let mut refusals = 0;
    loop {
        let (s, b) = (shared.clone(), batch.clone());
        let error = match tokio::task::spawn_blocking(move || write_outcomes(&s, &b)).await {
            Ok(Ok(recorded)) => return recorded,
            Ok(Err(e)) if e.is_unavailable() => e.to_string(),
            Ok(Err(e)) => {
                refusals += 1;
                e.to_string()
            }
            Err(panicked) => {
                refusals += 1;
                format!("the write panicked: {panicked}")
            }
        };
        if refusals >= shared.config.outcome_write_tries {
            let ids: Vec<String> = batch.iter().map(|o| format!("{}#{}", o.job.id, o.job.attempt)).collect();
            log::error!(
                "Postgres refused a batch of {} outcomes {refusals} times ({error}); releasing them to the rescuer \
                 (their leases lapse): {}",
                batch.len(),
                ids.join(", ")
            );
            return batch.iter().map(|_| Recorded::Released).collect();
        }
        let wait = backoff.next_delay();
        log::warn!("recording {} outcomes failed, retrying in {wait:?}: {error}", batch.len());
        tokio::time::sleep(wait).await;
    }
}

/// What happened to one outcome.
enum Recorded {
    Succeeded,
    Stale,
    Cancelled,
    Failed(FailOutcome),
    /// Postgres refused it even as a failure: left to the rescuer.
    Released,
}

/// Why an effect's savepoint rolled back.
enum EffectError {
    Db(diesel::result::Error),
    Panicked,
}

impl From<diesel::result::Error> for EffectError {
    fn from(e: diesel::result::Error) -> Self {
        EffectError::Db(e)
    }
}

/// One transaction for the batch. Returns one entry per outcome, in batch order. An `Err` is a failure of the batch
/// as a whole (Postgres away, or the transaction itself refused): nothing of it committed.
fn write_outcomes(shared: &Shared, batch: &[Outcome]) -> Result<Vec<Recorded>, DbError> {
    let max = shared.config.max_result_bytes;
    // What each outcome will be written as: its result, or the failure it became (unstorable result or error).
    let checked: Vec<Result<&serde_json::Value, HandlerError>> = batch
        .iter()
        .map(|o| match &o.result {
            Ok(result) => check_result(result, max).map(|()| result),
            Err(err) => Err(check_error(err, max).map_or_else(|unstorable| unstorable, |()| err.clone())),
        })
        .collect();
    let plain: Vec<Success> = batch
        .iter()
        .zip(&checked)
        .filter(|(o, _)| o.effects.is_empty())
        .filter_map(|(o, c)| {
            c.as_ref().ok().map(|r| Success { id: o.job.id, attempt: o.job.attempt, result: (*r).clone() })
        })
        .collect();
    let mut conn = shared.pool.get()?;
    // The usual batch: nothing but plain successes. Their one UPDATE is atomic by itself, so it goes without the
    // transaction and savepoint around it (four round trips fewer). If Postgres refuses it, it wrote nothing, and the
    // transaction below finds the refused ones.
    if !plain.is_empty() && plain.len() == batch.len() {
        match state::complete(&mut conn, &plain) {
            Ok(applied) => {
                let applied: HashMap<Uuid, JobStatus> = applied.into_iter().collect();
                return Ok(batch.iter().map(|o| plain_recorded(applied.get(&o.job.id))).collect());
            }
            Err(e) if is_outage(&e) => return Err(e.into()),
            Err(_) => {}
        }
    }
    let recorded = conn.transaction(|conn| {
        let (applied, refused) = complete_plain(conn, &plain)?;
        let mut recorded = Vec::with_capacity(batch.len());
        for (o, c) in batch.iter().zip(checked) {
            let (id, attempt) = (o.job.id, o.job.attempt);
            let failure = match c {
                Ok(_) if refused.contains_key(&id) => HandlerError::permanent(
                    UNSTORABLE,
                    format!("Postgres refused the handler's result: {}", refused[&id]),
                ),
                Ok(_) if o.effects.is_empty() => {
                    recorded.push(plain_recorded(applied.get(&id)));
                    continue;
                }
                Ok(result) => match complete_with_effects(conn, o, result) {
                    Ok(r) => {
                        recorded.push(r);
                        continue;
                    }
                    Err(EffectError::Db(e)) if is_outage(&e) => return Err(e),
                    // The savepoint rolled back status and effects together; record a failed attempt instead.
                    Err(EffectError::Db(e)) => {
                        log::warn!(job_id:% = id, attempt; "job {id} attempt {attempt}: its effects failed to commit: {e}");
                        HandlerError::retryable("effect_failed", "the job's database effects could not be committed")
                    }
                    Err(EffectError::Panicked) => {
                        log::warn!(job_id:% = id, attempt; "job {id} attempt {attempt}: an on_commit effect panicked");
                        HandlerError::retryable("effect_failed", "an on_commit effect of the job panicked")
                    }
                },
                Err(failure) => failure,
            };
            recorded.push(record_failure(shared, conn, o, &failure)?);
        }
        Ok::<_, diesel::result::Error>(recorded)
    })?;
    Ok(recorded)
}

/// What a plain success's write did: the status it ended in, or nothing (a stale attempt).
fn plain_recorded(applied: Option<&JobStatus>) -> Recorded {
    match applied {
        Some(JobStatus::Cancelled) => Recorded::Cancelled,
        Some(_) => Recorded::Succeeded,
        None => Recorded::Stale,
    }
}

/// All plain successes in one UPDATE, in a savepoint. If Postgres refuses it, each is tried alone (in its own
/// savepoint) to find the ones it refuses. Returns the applied writes and the refused ids with the reason.
#[allow(clippy::type_complexity)]
fn complete_plain(
    conn: &mut PgConnection,
    plain: &[Success],
) -> Result<(HashMap<Uuid, JobStatus>, HashMap<Uuid, String>), diesel::result::Error> {
    match conn.transaction(|c| state::complete(c, plain)) {
        Ok(applied) => return Ok((applied.into_iter().collect(), HashMap::new())),
        Err(e) if is_outage(&e) => return Err(e),
        Err(e) => log::warn!("Postgres refused {} successes written together ({e}); writing each alone", plain.len()),
    }
    let (mut applied, mut refused) = (HashMap::new(), HashMap::new());
    for s in plain {
        match conn.transaction(|c| state::complete(c, std::slice::from_ref(s))) {
            Ok(a) => applied.extend(a),
            Err(e) if is_outage(&e) => return Err(e),
            Err(e) => {
                log::warn!(job_id:% = s.id, attempt = s.attempt; "job {} attempt {}: Postgres refused its result: {e}", s.id, s.attempt);
                refused.insert(s.id, short(&e.to_string()));
            }
        }
    }
    Ok((applied, refused))
}

/// A success with `on_commit` effects, in its own savepoint: the fenced status write, then the effects, all or
/// nothing. A job whose cancel was accepted ends `cancelled` and its effects do not run (it did not succeed).
fn complete_with_effects(
    conn: &mut PgConnection,
    o: &Outcome,
    result: &serde_json::Value,
) -> Result<Recorded, EffectError> {
    conn.transaction(|conn| {
        let done = state::complete(conn, &[Success { id: o.job.id, attempt: o.job.attempt, result: result.clone() }])?;
        match done.first() {
            None => return Ok(Recorded::Stale),
            Some((_, JobStatus::Cancelled)) => return Ok(Recorded::Cancelled),
            Some(_) => {}
        }
        for effect in &o.effects {
            // A panicking effect is a bug in the handler's code: it fails this attempt, not the worker's batch.
            std::panic::catch_unwind(AssertUnwindSafe(|| effect(conn))).map_err(|_| EffectError::Panicked)??;
        }
        Ok(Recorded::Succeeded)
    })
}

/// A failed attempt (retry, final failure or cancellation), in its own savepoint. If Postgres refuses it, it is
/// recorded as `result_unstorable` instead; if that is refused too, the attempt is released to the rescuer.
fn record_failure(
    shared: &Shared,
    conn: &mut PgConnection,
    o: &Outcome,
    failure: &HandlerError,
) -> Result<Recorded, diesel::result::Error> {
    let (id, attempt) = (o.job.id, o.job.attempt);
    let topic = &shared.config.kafka.topic;
    let backoff = shared.config.retry_backoff(attempt);
    let job_error = JobError { code: failure.code.clone(), message: failure.message.clone() };
    let first = conn.transaction(|c| state::fail(c, id, attempt, &job_error, failure.retryable, backoff, topic));
    let outcome = match first {
        Ok(outcome) => outcome,
        Err(e) if is_outage(&e) => return Err(e),
        Err(e) => {
            log::warn!(job_id:% = id, attempt; "job {id} attempt {attempt}: Postgres refused its failure ({}): {e}", failure.code);
            let unstorable = JobError {
                code: UNSTORABLE.into(),
                message: format!("Postgres refused the attempt's outcome: {}", short(&e.to_string())),
            };
            match conn.transaction(|c| state::fail(c, id, attempt, &unstorable, false, backoff, topic)) {
                Ok(outcome) => outcome,
                Err(e) if is_outage(&e) => return Err(e),
                Err(e) => {
                    log::error!(
                        "job {id} attempt {attempt}: Postgres refused even its failure ({e}); releasing it to the \
                         rescuer (its lease lapses)"
                    );
                    return Ok(Recorded::Released);
                }
            }
        }
    };
    shared.metrics.failures.with_label_values(&[&failure.code]).inc();
    match outcome {
        FailOutcome::Retried { not_before } => {
            log::info!(job_id:% = id, attempt; "job {id} attempt {attempt} failed ({}); retry scheduled at {not_before}", failure.code)
        }
        FailOutcome::Failed => {
            log::warn!(job_id:% = id, attempt; "job {id} failed for good on attempt {attempt} ({})", failure.code)
        }
        FailOutcome::Cancelled => {
            log::info!(job_id:% = id, attempt; "job {id} attempt {attempt} ended; the job is cancelled as requested")
        }
        FailOutcome::Stale => {
            log::info!(job_id:% = id, attempt; "job {id} attempt {attempt} failure was stale; not recorded")
        }
    }
    Ok(Recorded::Failed(outcome))
}

/// A database error message, cut to a length fit for a job's error (it never holds the payload: Postgres names the
/// problem, not the row).
fn short(message: &str) -> String {
    message.chars().take(300).collect()
}

/// Metrics and a log line for stale successes, one entry per outcome.
fn count(shared: &Shared, batch: &[Outcome], recorded: &[Recorded]) {
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
            Recorded::Cancelled | Recorded::Failed(FailOutcome::Cancelled) => "cancelled",
            Recorded::Stale | Recorded::Failed(FailOutcome::Stale) => "stale",
            Recorded::Failed(FailOutcome::Retried { .. }) => "retried",
            Recorded::Failed(FailOutcome::Failed) => "failed",
            Recorded::Released => "released",
        };
        shared.metrics.outcomes.with_label_values(&[label]).inc();
    }
}
