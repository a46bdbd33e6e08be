//! Cancel against a real database: once a cancel was accepted (200 or 202), the job ends `cancelled` whatever its
//! attempt reports, it never starts again, and the decision is one atomic statement that cannot be fooled by a job
//! moving between `running` and `queued` under it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ackbox_db::models::{Job, JobError, JobStatus, NewJob, DEFAULT_TENANT};
use ackbox_db::state::{self, CancelOutcome, FailOutcome, Success};
use ackbox_testing::TestDb;
use diesel::prelude::*;
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(30);
const TOPIC: &str = "ackbox.test";

fn submit(conn: &mut PgConnection) -> Uuid {
    state::submit(conn, &NewJob::new("noop", serde_json::json!({}), 3), TOPIC).expect("submit").id
}

fn job(conn: &mut PgConnection, id: Uuid) -> Job {
    Job::find(conn, id).expect("query").expect("exists")
}

fn running(conn: &mut PgConnection) -> (Uuid, i32) {
    let id = submit(conn);
    let attempt = state::claim(conn, &[id], LEASE).expect("claim")[0].attempt;
    (id, attempt)
}

#[test]
fn a_success_reported_after_an_accepted_cancel_ends_the_job_cancelled() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let (id, attempt) = running(&mut conn);
    assert!(matches!(state::cancel(&mut conn, DEFAULT_TENANT, id).expect("cancel"), CancelOutcome::Requested(_)));

    let applied =
        state::complete(&mut conn, &[Success { id, attempt, result: serde_json::json!({"done": true}) }]).expect("ok");
    assert_eq!(applied, vec![(id, JobStatus::Cancelled)], "the write applied, as a cancellation");
    let j = job(&mut conn, id);
    assert_eq!(j.status, JobStatus::Cancelled);
    assert_eq!(j.error_field("code"), Some("cancelled"));
    assert!(j.finished_at.is_some() && j.lease_expires_at.is_none());
}

#[test]
fn a_retryable_failure_after_an_accepted_cancel_ends_cancelled_and_the_job_never_runs_again() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let (id, attempt) = running(&mut conn);
    assert!(matches!(state::cancel(&mut conn, DEFAULT_TENANT, id).expect("cancel"), CancelOutcome::Requested(_)));

    let err = JobError { code: "boom".into(), message: "it broke".into() };
    let outcome = state::fail(&mut conn, id, attempt, &err, true, Duration::ZERO, TOPIC).expect("fail");
    assert_eq!(outcome, FailOutcome::Cancelled);
    assert_eq!(job(&mut conn, id).status, JobStatus::Cancelled);
    assert_eq!(ackbox_db::outbox::for_job(&mut conn, id).expect("rows").len(), 1, "no retry was dispatched");
    assert!(state::claim(&mut conn, &[id], LEASE).expect("claim").is_empty());
}

#[test]
fn claim_never_starts_a_job_that_has_a_cancel_request() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let id = submit(&mut conn);
    // The state an older release could leave behind: queued again with the request still set.
    diesel::sql_query("UPDATE jobs SET cancel_requested_at = now() WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(id)
        .execute(&mut conn)
        .expect("set");
    assert!(state::claim(&mut conn, &[id], LEASE).expect("claim").is_empty());
    assert_eq!(job(&mut conn, id).status, JobStatus::Queued);
}

/// A job bouncing between `running` and `queued` (a worker failing attempts, the rescuer requeueing) is live all the
/// time: a cancel must never call it finished.
#[test]
fn cancel_never_answers_already_finished_for_a_job_moving_between_running_and_queued() {
    let db = TestDb::new();
    let mut conn = db.conn();
    for round in 0..300 {
        let (id, _) = running(&mut conn);
        let stop = Arc::new(AtomicBool::new(false));
        let flipper = {
            let (stop, mut c) = (stop.clone(), db.conn());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    diesel::sql_query(
                        "UPDATE jobs SET status = CASE status WHEN 'running' THEN 'queued' ELSE 'running' END
                          WHERE id = $1 AND status IN ('running', 'queued')",
                    )
                    .bind::<diesel::sql_types::Uuid, _>(id)
                    .execute(&mut c)
                    .expect("flip");
                }
            })
        };
        std::thread::sleep(Duration::from_micros(200));
        let outcome = state::cancel(&mut conn, DEFAULT_TENANT, id).expect("cancel");
        stop.store(true, Ordering::SeqCst);
        flipper.join().expect("flipper");
        match outcome {
            CancelOutcome::Cancelled(j) => assert_eq!(j.status, JobStatus::Cancelled, "round {round}"),
            CancelOutcome::Requested(j) => assert!(j.cancel_requested_at.is_some(), "round {round}"),
            other => panic!("round {round}: a live job got {other:?}"),
        }
    }
}

#[test]
fn cancel_of_a_finished_or_foreign_job_changes_nothing() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let (id, attempt) = running(&mut conn);
    state::complete(&mut conn, &[Success { id, attempt, result: serde_json::json!(1) }]).expect("complete");
    let before = job(&mut conn, id);
    assert!(matches!(state::cancel(&mut conn, DEFAULT_TENANT, id).expect("cancel"), CancelOutcome::AlreadyFinished(_)));
    assert!(matches!(state::cancel(&mut conn, Uuid::now_v7(), id).expect("cancel"), CancelOutcome::NotFound));
    let after = job(&mut conn, id);
    assert_eq!((after.status, after.updated_at, after.cancel_requested_at), (before.status, before.updated_at, None));
}
