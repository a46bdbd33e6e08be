use ackbox_db::models::JobStatus;
use ackbox_testing::dispatch;
use ackbox_worker::{async_trait, Handler, HandlerError, JobContext};

use crate::helpers::start;

/// A rolling deploy that adds a kind, or two fleets running different kinds: a worker without the kind must leave
/// the job alone (queued, marked), never fail it.
#[test]
fn a_worker_without_the_kind_leaves_the_job_queued_and_marks_it_for_a_worker_that_has_it() {
    let w = start(ackbox_worker::handlers::builtin());
    let id = w.submit("added-in-the-next-release", serde_json::json!({}), 3);
    dispatch(&w.kafka, id, "added-in-the-next-release", 1);
    // A known kind dispatched after it: once it is done, the first message was handled too (one partition, in order).
    let after = w.submit("echo", serde_json::json!({}), 1);
    dispatch(&w.kafka, after, "echo", 1);
    assert_eq!(w.wait_terminal(after).status, JobStatus::Succeeded);

    let skipped = ackbox_testing::wait_for("the skip to be recorded", crate::helpers::DEADLINE, || {
        let j = w.job(id);
        j.dispatch_skipped_at.map(|_| j)
    });
    assert_eq!((skipped.status, skipped.attempts), (JobStatus::Queued, 0), "not claimed, not failed");
    assert_eq!(skipped.error, None);
}

struct Panics;

#[async_trait]
impl Handler for Panics {
    async fn run(&self, _ctx: &JobContext, _payload: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
        panic!("handler bug")
    }
}

#[test]
fn a_panicking_handler_fails_the_attempt_and_the_worker_keeps_going() {
    let mut registry = ackbox_worker::handlers::builtin();
    registry.register("panics", Panics);
    let w = start(registry);
    let bad = w.submit("panics", serde_json::json!({}), 1);
    dispatch(&w.kafka, bad, "panics", 1);
    let job = w.wait_terminal(bad);
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error.expect("error")["code"], "panicked");

    let good = w.submit("echo", serde_json::json!({"still": "alive"}), 1);
    dispatch(&w.kafka, good, "echo", 1);
    assert_eq!(w.wait_terminal(good).status, JobStatus::Succeeded);
}

#[test]
fn a_failed_attempt_below_max_goes_back_to_queued_with_a_due_outbox_row() {
    let w = start(ackbox_worker::handlers::builtin());
    let id = w.submit("fail", serde_json::json!({"times": 5}), 3);
    dispatch(&w.kafka, id, "fail", 1);

    let job = ackbox_testing::wait_for("attempt 1 recorded as a retry", crate::helpers::DEADLINE, || {
        let j = w.job(id);
        (j.attempts == 1 && j.status == JobStatus::Queued).then_some(j)
    });
    assert_eq!(job.error.expect("error kept")["code"], "deliberate_failure");
    assert!(job.not_before.is_some(), "retry backoff set");
    let rows = ackbox_db::outbox::for_job(&mut w.db.conn(), id).expect("rows");
    assert_eq!(rows.len(), 2, "the retry wrote a new outbox row in the same transaction");
    assert_eq!(rows[1].payload["attempt"], 2);
    assert_eq!(Some(rows[1].available_at), job.not_before, "the row is due exactly when the job is");
}

#[test]
fn a_handler_that_overruns_the_job_timeout_fails_the_attempt_with_timeout() {
    let w = crate::helpers::start_with_config(ackbox_worker::handlers::builtin(), |c| {
        c.job_timeout = std::time::Duration::from_millis(300)
    });
    let id = w.submit("sleep", serde_json::json!({"ms": 60000}), 1);
    dispatch(&w.kafka, id, "sleep", 1);
    let job = w.wait_terminal(id);
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error.expect("error")["code"], "timeout");
}
