//! Attempt history: every finished attempt appends one entry to `jobs.history` in the statement that records its
//! outcome: a retried failure, a lease that lapsed, the final success.

use std::time::Duration;

use ackbox_db::models::{Job, JobError, NewJob};
use ackbox_db::state::{self, Success};
use ackbox_testing::TestDb;
use diesel::prelude::*;

const TOPIC: &str = "ackbox.test";

fn claim(db: &TestDb, id: uuid::Uuid) -> i32 {
    let claimed = state::claim(&mut db.conn(), &[id], Duration::from_secs(30)).expect("claim");
    assert_eq!(claimed.len(), 1, "claimable");
    claimed[0].attempt
}

#[test]
fn each_finished_attempt_is_kept_with_its_times_outcome_and_error() {
    let db = TestDb::new();
    let id = state::submit(&mut db.conn(), &NewJob::new("echo", serde_json::json!({}), 3), TOPIC).expect("submit").id;
    assert_eq!(Job::find(&mut db.conn(), id).expect("find").expect("job").history, None, "nothing finished yet");

    // Attempt 1 fails and is retried.
    let a1 = claim(&db, id);
    let err = JobError { code: "flaky".into(), message: "try again".into() };
    db.conn().transaction(|c| state::fail(c, id, a1, &err, true, Duration::ZERO, TOPIC)).expect("fail");
    // Attempt 2's worker dies: its lease lapses and the rescuer takes it back.
    claim(&db, id);
    diesel::sql_query("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(id)
        .execute(&mut db.conn())
        .expect("expire");
    state::rescue_leases(&mut db.conn(), 10, TOPIC).expect("rescue").expect("lock");
    // Attempt 3 succeeds; a stale duplicate of attempt 2's success changes nothing.
    let a3 = claim(&db, id);
    let done = state::complete(&mut db.conn(), &[Success { id, attempt: a3, result: serde_json::json!(1) }]);
    assert_eq!(done.expect("complete").len(), 1);
    let stale = state::complete(&mut db.conn(), &[Success { id, attempt: 2, result: serde_json::json!(2) }]);
    assert!(stale.expect("complete").is_empty());

    let job = Job::find(&mut db.conn(), id).expect("find").expect("job");
    let history = job.history.expect("history");
    let entries = history.as_array().expect("array");
    let summary: Vec<(i64, &str, Option<&str>)> = entries
        .iter()
        .map(|e| {
            (e["attempt"].as_i64().expect("n"), e["outcome"].as_str().expect("outcome"), e["error"]["code"].as_str())
        })
        .collect();
    assert_eq!(
        summary,
        vec![(1, "failed", Some("flaky")), (2, "lease_expired", Some("lease_expired")), (3, "succeeded", None)],
        "{history}"
    );
    for e in entries {
        let started: chrono::DateTime<chrono::Utc> = serde_json::from_value(e["started_at"].clone()).expect("started");
        let finished: chrono::DateTime<chrono::Utc> = serde_json::from_value(e["finished_at"].clone()).expect("ended");
        assert!(started <= finished, "{e}");
    }
    assert_eq!(entries[0]["error"]["message"], "try again");
}
