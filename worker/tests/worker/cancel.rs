//! Cancel while running: the handler hears of the request at once (LISTEN, not the next heartbeat), and whatever the
//! attempt then reports, the job ends `cancelled`.

use std::time::Duration;

use ackbox_db::models::{JobStatus, DEFAULT_TENANT};
use ackbox_db::state::{self, CancelOutcome};
use ackbox_testing::{dispatch, wait_for};
use ackbox_worker::{async_trait, Handler, HandlerError, JobContext};

use crate::helpers::{start_with_config, TestWorker, DEADLINE};

/// Runs until cancelled (or a minute), then says so.
struct UntilCancelled;

#[async_trait]
impl Handler for UntilCancelled {
    async fn run(&self, ctx: &JobContext, _payload: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
        tokio::select! {
            _ = ctx.cancelled() => Err(HandlerError::retryable("stopped", "stopped because it was cancelled")),
            _ = tokio::time::sleep(Duration::from_secs(60)) => Ok(serde_json::json!("ran to the end")),
        }
    }
}

/// Ignores cancellation: works 1.5 s and succeeds.
struct Stubborn;

#[async_trait]
impl Handler for Stubborn {
    async fn run(&self, _ctx: &JobContext, _payload: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        Ok(serde_json::json!("done anyway"))
    }
}

/// Heartbeats 30 s apart: only a push can tell the handler in time.
fn worker() -> TestWorker {
    let mut registry = ackbox_worker::handlers::builtin();
    registry.register("until-cancelled", UntilCancelled).register("stubborn", Stubborn);
    start_with_config(registry, |c| {
        c.lease = Duration::from_secs(120);
        c.heartbeat = Duration::from_secs(30);
    })
}

fn cancel_while_running(w: &TestWorker, kind: &str) -> uuid::Uuid {
    let id = w.submit(kind, serde_json::json!({}), 3);
    dispatch(&w.kafka, id, kind, 1);
    wait_for("the attempt to run", DEADLINE, || (w.job(id).status == JobStatus::Running).then_some(()));
    let outcome = state::cancel(&mut w.db.conn(), DEFAULT_TENANT, id).expect("cancel");
    assert!(matches!(outcome, CancelOutcome::Requested(_)), "{outcome:?}");
    id
}

#[test]
fn a_running_handler_hears_of_a_cancel_long_before_its_next_heartbeat() {
    let w = worker();
    let id = cancel_while_running(&w, "until-cancelled");
    // The deadline is a third of the heartbeat interval: the heartbeat cannot be what delivered the request.
    let job = wait_for("the job to end", Duration::from_secs(10), || {
        let j = w.job(id);
        j.status.is_terminal().then_some(j)
    });
    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!(job.attempts, 1, "never retried");
}

#[test]
fn an_attempt_that_succeeds_after_an_accepted_cancel_ends_cancelled() {
    let w = worker();
    let id = cancel_while_running(&w, "stubborn");
    let job = w.wait_terminal(id);
    assert_eq!(job.status, JobStatus::Cancelled, "the client was answered 202: it will end cancelled");
    assert_eq!(job.result, None);
}
