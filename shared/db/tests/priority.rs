//! A job's priority follows it into every dispatch: the first, a retry's, a rescue's and an operator retry's outbox
//! rows all carry it, so the relay publishes each onto the job's lane.

use std::time::Duration;

use ackbox_db::models::{JobError, NewJob, Priority};
use ackbox_db::state;
use ackbox_testing::TestDb;
use diesel::prelude::*;
use uuid::Uuid;

const TOPIC: &str = "ackbox.test";

/// The priorities of the job's outbox rows, oldest first.
fn dispatch_priorities(db: &TestDb, id: Uuid) -> Vec<i16> {
    use ackbox_db::schema::outbox::dsl as o;
    o::outbox.filter(o::aggregate_id.eq(id)).order(o::id).select(o::priority).load(&mut db.conn()).expect("rows")
}

fn claim(db: &TestDb, id: Uuid) -> i32 {
    let claimed = state::claim(&mut db.conn(), &[id], Duration::from_secs(30)).expect("claim");
    assert_eq!(claimed.len(), 1, "claimable");
    claimed[0].attempt
}

#[test]
fn every_dispatch_of_a_job_carries_its_priority() {
    let db = TestDb::new();
    for priority in [Priority::High, Priority::Low] {
        // First dispatch.
        let job = NewJob::new("echo", serde_json::json!({}), 2).with_priority(priority);
        let id = state::submit(&mut db.conn(), &job, TOPIC).expect("submit").id;
        // A retryable failure: requeued with a new dispatch.
        let attempt = claim(&db, id);
        let err = JobError { code: "boom".into(), message: "try again".into() };
        let retried = db.conn().transaction(|c| state::fail(c, id, attempt, &err, true, Duration::ZERO, TOPIC));
        assert!(matches!(retried, Ok(state::FailOutcome::Retried { .. })), "{retried:?}");
        // A lapsed lease: the rescuer requeues it with a new dispatch.
        claim(&db, id);
        diesel::sql_query("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1")
            .bind::<diesel::sql_types::Uuid, _>(id)
            .execute(&mut db.conn())
            .expect("expire");
        diesel::sql_query("UPDATE jobs SET max_attempts = 3 WHERE id = $1")
            .bind::<diesel::sql_types::Uuid, _>(id)
            .execute(&mut db.conn())
            .expect("one more attempt");
        let report = state::rescue_leases(&mut db.conn(), 10, TOPIC).expect("rescue").expect("lock");
        assert_eq!(report.requeued, 1, "{report:?}");
        // It fails for good, then an operator retries it.
        let attempt = claim(&db, id);
        db.conn().transaction(|c| state::fail(c, id, attempt, &err, false, Duration::ZERO, TOPIC)).expect("fail");
        let retry = state::retry_failed(&mut db.conn(), id, TOPIC).expect("retry");
        assert!(matches!(retry, state::RetryOutcome::Requeued { .. }), "{retry:?}");

        assert_eq!(dispatch_priorities(&db, id), vec![priority.as_i16(); 4], "{priority}: every dispatch");
    }
}
