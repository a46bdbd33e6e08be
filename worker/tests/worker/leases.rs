//! Leases, heartbeats, progress, cancellation on a lost lease, and exactly-once effects.

use std::time::Duration;

use ackbox_db::models::JobStatus;
use ackbox_testing::{dispatch, wait_for};

use crate::helpers::{start, start_with_config, DEADLINE};

#[test]
fn the_heartbeat_extends_the_lease_of_a_job_that_outlives_it() {
    // A 300 ms lease and a 1.5 s job: without heartbeats the lease would lapse four times over.
    let w = start_with_config(ackbox_worker::handlers::builtin(), |c| c.lease = Duration::from_millis(300));
    let id = w.submit("sleep", serde_json::json!({"ms": 1500}), 3);
    dispatch(&w.kafka, id, "sleep", 1);

    let first = wait_for("the job to start", DEADLINE, || {
        w.job(id).lease_expires_at.filter(|_| w.job(id).status == JobStatus::Running)
    });
    let later = wait_for("a heartbeat to move the lease", DEADLINE, || {
        let j = w.job(id);
        j.lease_expires_at.filter(|l| *l > first + chrono::Duration::milliseconds(50))
    });
    assert!(later > first);
    let job = w.wait_terminal(id);
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.attempts, 1, "never rescued while its worker was alive");
}

#[test]
fn a_long_job_reports_progress_in_its_row() {
    let w = start(ackbox_worker::handlers::builtin());
    let id = w.submit("sleep", serde_json::json!({"ms": 2500}), 1);
    dispatch(&w.kafka, id, "sleep", 1);
    let progress = wait_for("a progress report", DEADLINE, || w.job(id).progress);
    assert_eq!(progress["message"], "sleeping");
    assert!(progress["percent"].as_u64().is_some_and(|p| p > 0 && p < 100), "{progress}");
    assert_eq!(w.wait_terminal(id).status, JobStatus::Succeeded);
}

#[test]
fn an_attempt_that_lost_its_lease_is_cancelled_and_takes_no_effect() {
    let w = start_with_config(ackbox_worker::handlers::builtin(), |c| c.lease = Duration::from_millis(600));
    let id = w.submit("effect", serde_json::json!({"ms": 20000}), 3);
    dispatch(&w.kafka, id, "effect", 1);
    wait_for("the attempt to run", DEADLINE, || (w.job(id).status == JobStatus::Running).then_some(()));

    // The rescuer takes the job back as if the worker had stalled.
    assert_eq!(w.expire_and_rescue(id).requeued, 1);

    // The next heartbeat notices, cancels the handler long before its 20 s, and its failure is refused as stale.
    wait_for("the lost lease to be noticed", DEADLINE, || (w.metrics.leases_lost.get() == 1).then_some(()));
    wait_for("the cancelled attempt's outcome", DEADLINE, || {
        (w.metrics.outcomes.with_label_values(&["stale"]).get() == 1).then_some(())
    });
    let job = w.job(id);
    assert_eq!((job.status, job.attempts), (JobStatus::Queued, 1), "the rescued state stands");
    assert_eq!(w.effects(id), 0, "the cancelled attempt took no effect");
}

#[test]
fn the_effect_kind_takes_effect_once_however_often_it_is_delivered() {
    let w = start(ackbox_worker::handlers::builtin());
    let id = w.submit("effect", serde_json::json!({}), 3);
    for _ in 0..4 {
        dispatch(&w.kafka, id, "effect", 1);
    }
    assert_eq!(w.wait_terminal(id).status, JobStatus::Succeeded);
    // A marker behind the duplicates proves they were all consumed before we count.
    let marker = w.submit("noop", serde_json::json!({}), 1);
    dispatch(&w.kafka, marker, "noop", 1);
    w.wait_terminal(marker);
    assert_eq!(w.effects(id), 1);
    assert_eq!(w.metrics.duplicates.get(), 3);
}

#[test]
fn the_worker_serves_metrics_and_health() {
    let w = start(ackbox_worker::handlers::builtin());
    let id = w.submit("noop", serde_json::json!({}), 1);
    dispatch(&w.kafka, id, "noop", 1);
    w.wait_terminal(id);
    let addr =
        w.rt.block_on(async { ackbox_runtime::ops::spawn("127.0.0.1:0", w.metrics.registry.clone(), w.db.pool(1)) })
            .expect("ops");
    let body = wait_for("outcome and lag metrics", DEADLINE, || {
        let body = reqwest::blocking::get(format!("http://{addr}/metrics")).ok()?.text().ok()?;
        (body.contains("ackbox_worker_outcomes_total{outcome=\"succeeded\"} 1")
            && body.contains(&format!("ackbox_worker_consumer_lag{{partition=\"0\",topic=\"{}\"}}", w.kafka.topic)))
        .then_some(body)
    });
    assert!(body.contains("ackbox_worker_time_to_start_seconds_count 1"), "{body}");
    assert!(body.contains("ackbox_worker_job_duration_seconds_count{kind=\"noop\"} 1"), "{body}");
    let ready = reqwest::blocking::get(format!("http://{addr}/readyz")).expect("readyz");
    assert_eq!(ready.status().as_u16(), 200);
}

/// Records which attempts saw their cancellation.
struct Records(std::sync::Arc<std::sync::Mutex<Vec<i32>>>);

#[ackbox_worker::async_trait]
impl ackbox_worker::Handler for Records {
    async fn run(
        &self,
        ctx: &ackbox_worker::JobContext,
        _payload: serde_json::Value,
    ) -> Result<serde_json::Value, ackbox_worker::HandlerError> {
        tokio::select! {
            _ = ctx.cancelled() => {
                self.0.lock().expect("lock").push(ctx.attempt);
                Err(ackbox_worker::HandlerError::retryable("stopped", "cancelled"))
            }
            _ = tokio::time::sleep(Duration::from_secs(60)) => Ok(serde_json::json!(ctx.attempt)),
        }
    }
}

#[test]
fn a_stale_attempt_is_cancelled_even_when_its_successor_runs_on_the_same_worker() {
    let cancelled = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut registry = ackbox_worker::handlers::builtin();
    registry.register("records", Records(cancelled.clone()));
    // Heartbeats 5 s apart, so attempt 2 usually replaces attempt 1 here before any heartbeat runs in between.
    let w = start_with_config(registry, |c| c.heartbeat = Duration::from_secs(5));
    let id = w.submit("records", serde_json::json!({}), 3);
    dispatch(&w.kafka, id, "records", 1);
    wait_for("attempt 1 to run", DEADLINE, || (w.job(id).status == JobStatus::Running).then_some(()));

    // The rescuer takes the job back, and attempt 2 is dispatched to this same worker while attempt 1 still runs.
    assert_eq!(w.expire_and_rescue(id).requeued, 1);
    dispatch(&w.kafka, id, "records", 2);
    wait_for("attempt 2 to run", DEADLINE, || (w.job(id).attempts == 2).then_some(()));

    wait_for("attempt 1 to be told to stop", DEADLINE, || cancelled.lock().expect("lock").contains(&1).then_some(()));
    assert!(!cancelled.lock().expect("lock").contains(&2), "the live attempt keeps running");
    let job = w.job(id);
    assert_eq!((job.status, job.attempts), (JobStatus::Running, 2));
}
