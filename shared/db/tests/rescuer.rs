//! The rescuer, table-driven in the style of River's `job_rescuer_test.go`: each case crafts a job's state relative to
//! the horizon and says what one pass must do with it.

use std::time::Duration;

use ackbox_db::models::{Job, JobStatus, NewJob};
use ackbox_db::state::{self, RescueReport};
use ackbox_testing::TestDb;
use diesel::prelude::*;
use uuid::Uuid;

const TOPIC: &str = "ackbox.test";
const DISPATCH_TIMEOUT: Duration = Duration::from_secs(60);

/// How to shape a job before the pass (SQL fragments run against the job row and its outbox rows).
struct Case {
    name: &'static str,
    max_attempts: i32,
    /// `UPDATE jobs SET <job_set> WHERE id = $1`
    job_set: &'static str,
    /// `UPDATE outbox SET <outbox_set> WHERE aggregate_id = $1` (None: leave unpublished)
    outbox_set: Option<&'static str>,
    expect_status: JobStatus,
    /// Outbox rows expected after the pass (1 = nothing new was dispatched).
    expect_outbox_rows: usize,
}

const CASES: &[Case] = &[
    Case {
        name: "running, lease expires just after the horizon: left alone",
        max_attempts: 3,
        job_set: "status = 'running', attempts = 1, lease_expires_at = now() + interval '2 seconds'",
        outbox_set: Some("published_at = now()"),
        expect_status: JobStatus::Running,
        expect_outbox_rows: 1,
    },
    Case {
        name: "running, lease expired just before the horizon: requeued with a new dispatch",
        max_attempts: 3,
        job_set: "status = 'running', attempts = 1, lease_expires_at = now() - interval '1 millisecond'",
        outbox_set: Some("published_at = now()"),
        expect_status: JobStatus::Queued,
        expect_outbox_rows: 2,
    },
    Case {
        name: "running at max attempts, lease expired: failed with lease_expired",
        max_attempts: 2,
        job_set: "status = 'running', attempts = 2, lease_expires_at = now() - interval '1 second'",
        outbox_set: Some("published_at = now()"),
        expect_status: JobStatus::Failed,
        expect_outbox_rows: 1,
    },
    Case {
        name: "running with a cancel requested, lease expired: cancelled (counted as cancelled, not failed)",
        max_attempts: 3,
        job_set: "status = 'running', attempts = 1, cancel_requested_at = now(), lease_expires_at = now() - interval '1 second'",
        outbox_set: Some("published_at = now()"),
        expect_status: JobStatus::Cancelled,
        expect_outbox_rows: 1,
    },
    Case {
        name: "queued, dispatch published just inside the timeout: left alone",
        max_attempts: 3,
        job_set: "updated_at = now() - interval '59 seconds'",
        outbox_set: Some("published_at = now() - interval '59 seconds'"),
        expect_status: JobStatus::Queued,
        expect_outbox_rows: 1,
    },
    Case {
        name: "queued, dispatch published just past the timeout, never started: dispatched again",
        max_attempts: 3,
        job_set: "updated_at = now() - interval '61 seconds'",
        outbox_set: Some("published_at = now() - interval '61 seconds'"),
        expect_status: JobStatus::Queued,
        expect_outbox_rows: 2,
    },
    Case {
        name: "queued and old but its dispatch is still unpublished (relay behind): left to the relay",
        max_attempts: 3,
        job_set: "updated_at = now() - interval '1 hour'",
        outbox_set: None,
        expect_status: JobStatus::Queued,
        expect_outbox_rows: 1,
    },
    Case {
        name: "queued with a future not_before (retry backoff): not dispatched before it is due",
        max_attempts: 3,
        job_set: "updated_at = now() - interval '1 hour', not_before = now() + interval '1 minute'",
        outbox_set: Some("published_at = now() - interval '1 hour'"),
        expect_status: JobStatus::Queued,
        expect_outbox_rows: 1,
    },
    Case {
        name: "queued whose not_before has passed and whose dispatch is long gone: dispatched",
        max_attempts: 3,
        job_set: "updated_at = now() - interval '1 hour', not_before = now() - interval '1 second'",
        outbox_set: Some("published_at = now() - interval '1 hour'"),
        expect_status: JobStatus::Queued,
        expect_outbox_rows: 2,
    },
    Case {
        name: "cancelled long ago: left alone",
        max_attempts: 3,
        job_set: "status = 'cancelled', finished_at = now(), updated_at = now() - interval '1 hour', lease_expires_at = now() - interval '1 hour'",
        outbox_set: Some("published_at = now() - interval '1 hour'"),
        expect_status: JobStatus::Cancelled,
        expect_outbox_rows: 1,
    },
    Case {
        name: "succeeded with a stale lease value: left alone",
        max_attempts: 3,
        job_set: "status = 'succeeded', attempts = 1, finished_at = now(), lease_expires_at = now() - interval '1 hour'",
        outbox_set: Some("published_at = now() - interval '1 hour'"),
        expect_status: JobStatus::Succeeded,
        expect_outbox_rows: 1,
    },
    Case {
        name: "failed long ago: left alone",
        max_attempts: 1,
        job_set: "status = 'failed', attempts = 1, finished_at = now(), updated_at = now() - interval '1 hour'",
        outbox_set: Some("published_at = now() - interval '1 hour'"),
        expect_status: JobStatus::Failed,
        expect_outbox_rows: 1,
    },
];

fn arrange(conn: &mut PgConnection, case: &Case) -> Uuid {
    let id =
        state::submit(conn, &NewJob::new("noop", serde_json::json!({}), case.max_attempts), TOPIC).expect("submit").id;
    diesel::sql_query(format!("UPDATE jobs SET {} WHERE id = $1", case.job_set))
        .bind::<diesel::sql_types::Uuid, _>(id)
        .execute(conn)
        .expect(case.name);
    if let Some(set) = case.outbox_set {
        diesel::sql_query(format!("UPDATE outbox SET {set} WHERE aggregate_id = $1"))
            .bind::<diesel::sql_types::Uuid, _>(id)
            .execute(conn)
            .expect(case.name);
    }
    id
}

#[test]
fn each_case_is_rescued_or_left_alone_as_specified() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let ids: Vec<Uuid> = CASES.iter().map(|c| arrange(&mut conn, c)).collect();

    let report = state::rescue(&mut conn, DISPATCH_TIMEOUT, 100, TOPIC).expect("pass").expect("lock was free");

    for (case, id) in CASES.iter().zip(&ids) {
        let job = Job::find(&mut conn, *id).expect("query").expect("row");
        assert_eq!(job.status, case.expect_status, "{}", case.name);
        let rows = ackbox_db::outbox::for_job(&mut conn, *id).expect("rows");
        assert_eq!(rows.len(), case.expect_outbox_rows, "{}", case.name);
        if case.expect_outbox_rows == 2 {
            assert!(rows[1].published_at.is_none(), "{}: the new dispatch awaits the relay", case.name);
            assert_eq!(rows[1].payload["attempt"], job.attempts + 1, "{}", case.name);
        }
        if job.status == JobStatus::Failed && case.job_set.starts_with("status = 'running'") {
            assert_eq!(job.error.as_ref().expect("error")["code"], "lease_expired", "{}", case.name);
            assert!(job.finished_at.is_some(), "{}", case.name);
        }
    }
    assert_eq!(report, RescueReport { requeued: 1, failed: 1, cancelled: 1, redispatched: 2 });

    // A second pass finds nothing: the new dispatches are unpublished, the requeued job is queued and fresh.
    let again = state::rescue(&mut conn, DISPATCH_TIMEOUT, 100, TOPIC).expect("pass").expect("lock");
    assert_eq!(again, RescueReport::default());
}

#[test]
fn a_batch_of_limit_plus_one_takes_two_passes() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let limit = 4;
    for _ in 0..=limit {
        arrange(&mut conn, &CASES[1]); // expired lease, requeued
    }
    let first = state::rescue(&mut conn, DISPATCH_TIMEOUT, limit as i64, TOPIC).expect("pass").expect("lock");
    let second = state::rescue(&mut conn, DISPATCH_TIMEOUT, limit as i64, TOPIC).expect("pass").expect("lock");
    assert_eq!((first.requeued, second.requeued), (limit, 1));
}

#[test]
fn only_one_lease_pass_runs_at_a_time_and_it_does_not_hold_up_the_dispatch_part() {
    let db = TestDb::new();
    let mut holder = db.conn();
    let mut other = db.conn();
    arrange(&mut other, &CASES[1]);
    holder
        .transaction(|h| {
            diesel::sql_query(format!("SELECT pg_advisory_xact_lock({})", state::RESCUER_LOCK_KEY)).execute(h)?;
            // While another pass holds the lease lock, this one rescues no lease; the stale-dispatch part has a lock
            // and a transaction of its own, so it is not held up.
            assert_eq!(state::rescue_leases(&mut other, 10, TOPIC)?, None);
            assert_eq!(state::rescue(&mut other, DISPATCH_TIMEOUT, 10, TOPIC)?.map(|r| r.requeued), Some(0));
            Ok::<_, diesel::result::Error>(())
        })
        .expect("holder tx");
    assert_eq!(state::rescue(&mut other, DISPATCH_TIMEOUT, 10, TOPIC).expect("pass").map(|r| r.requeued), Some(1));
}

#[test]
fn a_zombie_attempt_cannot_write_after_its_job_was_rescued() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let id = state::submit(&mut conn, &NewJob::new("noop", serde_json::json!({}), 3), TOPIC).expect("submit").id;
    let zombie = state::claim(&mut conn, &[id], Duration::from_millis(1)).expect("claim")[0].attempt;
    ackbox_testing::wait_for("the lease to lapse", Duration::from_secs(5), || {
        let j = Job::find(&mut conn, id).expect("q").expect("row");
        (j.lease_expires_at.is_some_and(|l| l < chrono::Utc::now())).then_some(())
    });
    assert_eq!(state::rescue(&mut conn, DISPATCH_TIMEOUT, 10, TOPIC).expect("pass").expect("lock").requeued, 1);
    let fresh = state::claim(&mut conn, &[id], Duration::from_secs(30)).expect("claim")[0].attempt;
    assert_eq!(fresh, zombie + 1);

    // The zombie wakes up and reports; its heartbeat and its success are both refused.
    assert!(state::heartbeat(&mut conn, &[(id, zombie)], Duration::from_secs(30)).expect("hb").is_empty());
    let applied =
        state::complete(&mut conn, &[state::Success { id, attempt: zombie, result: serde_json::json!("zombie") }])
            .expect("complete");
    assert!(applied.is_empty());
    let applied =
        state::complete(&mut conn, &[state::Success { id, attempt: fresh, result: serde_json::json!("fresh") }])
            .expect("complete");
    assert_eq!(applied, vec![(id, JobStatus::Succeeded)]);
    assert_eq!(Job::find(&mut conn, id).expect("q").expect("row").result, Some(serde_json::json!("fresh")));
}

#[test]
fn a_job_skipped_for_lack_of_its_kind_is_dispatched_again_once_a_worker_with_the_kind_registers() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let id = state::submit(&mut conn, &NewJob::new("new-kind", serde_json::json!({}), 3), TOPIC).expect("submit").id;
    diesel::sql_query("UPDATE outbox SET published_at = now()").execute(&mut conn).expect("publish");
    // An old worker received it and had no handler.
    state::mark_skipped(&mut conn, &[id]).expect("skip");
    let pass = |c: &mut PgConnection| state::rescue(c, DISPATCH_TIMEOUT, 10, TOPIC).expect("pass").expect("lock");
    assert_eq!(pass(&mut conn).redispatched, 0, "no worker with the kind yet: nothing to gain from sending it again");

    ackbox_db::models::job_kind::register(&mut conn, &["new-kind".to_string()]).expect("register");
    assert_eq!(pass(&mut conn).redispatched, 1, "a worker with the kind started: send it again at once");
    assert_eq!(ackbox_db::outbox::for_job(&mut conn, id).expect("rows").len(), 2);
    assert!(Job::find(&mut conn, id).expect("q").expect("row").dispatch_skipped_at.is_none());
    assert_eq!(pass(&mut conn).redispatched, 0, "once");
}
